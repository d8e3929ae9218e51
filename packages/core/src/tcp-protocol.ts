import { ConnectionTimer, type Connection } from "./connection.js";
import { PluginError, ResolveError } from "./errors.js";
import type { ProtocolHandler } from "./plugin.js";
import { earlyRead, relay } from "./relay.js";

/**
 * Raw TCP: routes by listener and client IP (and SNI when the listener terminates TLS), then
 * pipes bytes. Registered by every Proxy under the name "tcp".
 */
export class TcpProtocol implements ProtocolHandler {
  readonly name = "tcp";

  async handle(conn: Connection): Promise<void> {
    const proxy = conn.context;
    const clientIp = conn.clientIp;
    // the address is read here, for the first time, unless a hook or event asked before: a client
    // that reset in the meantime has none left, and is gone — not a routing failure
    if (clientIp === "") return conn.destroy("client-error", new Error("client connection reset before routing"));
    const key = {
      listener: conn.listener.name,
      protocol: "tcp",
      clientIp,
      // only a TLS-terminated connection has an SNI (and builds its info object)
      ...(conn.socket !== conn.rawSocket && conn.info.servername ? { sni: conn.info.servername } : {}),
    };
    // read from here on so that a client reset or FIN during routing/connect is noticed
    const take = earlyRead(conn.socket);
    let match;
    try {
      match = proxy.tryResolveSync(conn, key) ?? (await proxy.resolve(conn, key));
    } catch (err) {
      if (err instanceof ResolveError) {
        proxy.logger.info("no route", { id: conn.id, listener: conn.listener.name, error: err.message });
        return conn.destroy("no-route", err);
      }
      throw err;
    }
    if (conn.destroyed) return;
    // the handshake ends with routing (the key is known): from here on the connect timeout (per
    // attempt) bounds the upstream connect, not what is left of the handshake deadline
    conn.clearTimer(ConnectionTimer.HANDSHAKE);
    let upstream;
    try {
      ({ socket: upstream } = await proxy.connectUpstream(conn, match));
    } catch (err) {
      take();
      // a failing onUpstreamResponse tap is a plugin failure (reason plugin-error, pluginError
      // event), not a connect failure
      if (err instanceof PluginError) return proxy.failConnection(conn, err);
      proxy.logger.warn("upstream connect failed", { id: conn.id, error: (err as Error).message });
      return conn.destroy("connect-failed", err);
    }
    const { head, ended } = take();
    relay(conn, upstream, { idleMs: proxy.timeoutsFor(conn).idle, head, clientEnded: ended });
  }
}
