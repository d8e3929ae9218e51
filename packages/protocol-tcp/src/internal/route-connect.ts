import type { Socket } from "node:net";
import { ConnectionTimer, PluginError, ResolveError, type Connection, type RouteKey, type RouteMatchResult, type Target } from "@switchyard/core";

/** Why a connection found no backend: the protocol answers each in its own terms. */
export type RouteFailure = { readonly kind: "resolve"; readonly error: ResolveError } | { readonly kind: "connect"; readonly error: unknown };

/**
 * The key every database protocol starts from: listener, protocol, client address, and the SNI
 * of a TLS connection. Undefined when the client reset before its address could be read (the
 * connection is then destroyed here: it is gone, not a routing failure).
 */
export function baseKey(conn: Connection): RouteKey | undefined {
  const clientIp = conn.clientIp;
  if (clientIp === "") {
    conn.destroy("client-error", new Error("client connection reset before routing"));
    return undefined;
  }
  return {
    listener: conn.listener.name,
    protocol: conn.listener.protocol,
    clientIp,
    ...(conn.socket !== conn.rawSocket && conn.info.servername ? { sni: conn.info.servername } : {}),
  };
}

/**
 * Resolves `key` and connects to the route's target. Routing ends the handshake deadline
 * (the connect deadline bounds the dial). A resolver's typed refusal or a failed connect goes
 * to `fail`; a plugin failure ends the connection through the proxy. Undefined when there is
 * no backend (answered, or the client went away).
 */
export async function routeAndConnect(
  conn: Connection,
  key: RouteKey,
  fail: (failure: RouteFailure) => void,
): Promise<{ match: RouteMatchResult; upstream: Socket; target: Target } | undefined> {
  const proxy = conn.proxy;
  let match: RouteMatchResult;
  try {
    match = proxy.tryResolveSync(conn, key) ?? (await proxy.resolve(conn, key));
  } catch (err) {
    if (!(err instanceof ResolveError)) throw err;
    proxy.logger.info("no route", { id: conn.id, listener: conn.listener.name, database: key.database, user: key.user, error: err.message });
    fail({ kind: "resolve", error: err });
    return undefined;
  }
  if (conn.destroyed) return undefined;
  conn.clearTimer(ConnectionTimer.HANDSHAKE);
  try {
    // a database server takes TLS only after its own preamble: a target's `tls` is started by
    // the protocol (upstream STARTTLS), never from the first byte
    const { socket, target } = await proxy.connectUpstream(conn, match, undefined, { tls: "starttls" });
    return { match, upstream: socket, target };
  } catch (err) {
    if (conn.destroyed) return undefined;
    if (err instanceof PluginError) {
      proxy.failConnection(conn, err);
      return undefined;
    }
    proxy.logger.warn("upstream connect failed", { id: conn.id, error: (err as Error).message });
    fail({ kind: "connect", error: err });
    return undefined;
  }
}
