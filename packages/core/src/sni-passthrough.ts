/**
 * TLS on core's `tcp` listeners: terminated at accept (a listener with `tls`), or routed by the
 * SNI of a ClientHello that is only peeked at (listener option `tlsPassthrough: true`): the
 * bytes stay on the socket and reach the chosen backend untouched, so the backend completes the
 * handshake with its own certificate. On a passthrough listener that also has certificates, a
 * route chooses with its option `tls`: "terminate" (the default there) or "passthrough".
 */
import type { Connection } from "./connection.js";
import { ConfigError } from "./errors.js";
import { ClientHelloReader, type ClientHello } from "./tls-client-hello.js";
import { readSocketPrefix } from "./internal/socket-prefix.js";
import { unknownOptionMessage } from "./options-check.js";
import type { Route } from "./routing/route.js";
import { upgradeToTls } from "./tls.js";

/** What a route's `options.tls` may say on a tcp listener. */
export type TcpRouteTls = "passthrough" | "terminate";

/** What the tcp protocol learnt about TLS before routing. */
export interface TlsBeforeRouting {
  /** the SNI: peeked (passthrough listener) or from the terminated handshake */
  readonly sni: string | undefined;
  /** the ClientHello peeked at on a passthrough listener; undefined otherwise */
  readonly hello: ClientHello | undefined;
}

const NO_TLS: TlsBeforeRouting = Object.freeze({ sni: undefined, hello: undefined });

/** Throws ConfigError for listener options of the tcp protocol other than a boolean `tlsPassthrough`. */
export function checkTcpListenerOptions(options: Readonly<Record<string, unknown>>, where: string): void {
  for (const k of Object.keys(options)) {
    if (k !== "tlsPassthrough") throw new ConfigError(`${where}: ${unknownOptionMessage(k, ["tlsPassthrough"])} (protocol "tcp" takes only tlsPassthrough)`);
  }
  const v = options.tlsPassthrough;
  if (v !== undefined && typeof v !== "boolean") throw new ConfigError(`${where}.tlsPassthrough must be true or false`);
}

/** Throws ConfigError for a bad `tls` route option of the tcp protocol. */
export function checkRouteTlsOption(options: Readonly<Record<string, unknown>>, where: string): void {
  const v = options.tls;
  if (v !== undefined && v !== "passthrough" && v !== "terminate") {
    throw new ConfigError(`${where}.tls must be "passthrough" or "terminate"`);
  }
}

function passthroughListener(conn: Connection): boolean {
  return conn.listener.options?.tlsPassthrough === true;
}

/**
 * Before routing: terminates TLS on a listener with certificates (unless it is a passthrough
 * listener), or peeks the ClientHello on a passthrough listener. Undefined when the connection
 * was closed (and logged) on the way. Synchronous (no promise hop) when there is nothing to do.
 */
export function tlsBeforeRouting(conn: Connection): TlsBeforeRouting | Promise<TlsBeforeRouting | undefined> {
  if (!passthroughListener(conn) && conn.proxy.certificatesFor(conn) === undefined) return NO_TLS;
  return tlsStep(conn);
}

async function tlsStep(conn: Connection): Promise<TlsBeforeRouting | undefined> {
  const certs = conn.proxy.certificatesFor(conn);
  if (!passthroughListener(conn)) {
    if (certs === undefined) return NO_TLS;
    await upgradeToTls(conn, certs, { timeoutMs: conn.proxy.timeoutsFor(conn).handshake });
    if (conn.destroyed) return undefined;
    return { sni: conn.info.servername, hello: undefined };
  }
  const hello = await peekClientHello(conn);
  return hello === undefined ? undefined : { sni: hello.sni, hello };
}

/**
 * True when, on a passthrough listener, the route has TLS terminated by the proxy: its option
 * `tls` is "terminate", or absent on a listener with certificates.
 */
export function terminatesAfterRouting(conn: Connection, route: Route): boolean {
  if (!passthroughListener(conn)) return false;
  const choice = (route.options.tls as TcpRouteTls | undefined) ?? (conn.proxy.certificatesFor(conn) ? "terminate" : "passthrough");
  return choice === "terminate";
}

/**
 * Terminates TLS after routing (see terminatesAfterRouting). `head` are the client bytes read
 * meanwhile, the ClientHello among them. Resolves true once the handshake is done, false when
 * the connection was closed (a listener without certificates: logged, "protocol-error").
 */
export async function terminateAfterRouting(conn: Connection, route: Route, head: Buffer[]): Promise<boolean> {
  const certs = conn.proxy.certificatesFor(conn);
  if (certs === undefined) {
    conn.proxy.logger.warn("route asks to terminate TLS on a listener without certificates", { id: conn.id, route: route.name, listener: conn.listener.name });
    conn.destroy("protocol-error");
    return false;
  }
  await upgradeToTls(conn, certs, { timeoutMs: conn.proxy.timeoutsFor(conn).handshake, head: Buffer.concat(head) });
  return !conn.destroyed;
}

/**
 * Reads the ClientHello on the raw socket without consuming it (every byte read is given back),
 * within the listener's handshake deadline. Undefined when the connection was closed: client
 * gone, deadline passed, or bytes that are not a ClientHello (logged, "protocol-error").
 */
export async function peekClientHello(conn: Connection): Promise<ClientHello | undefined> {
  const reader = new ClientHelloReader();
  const seen: Buffer[] = [];
  let result;
  try {
    // the listener's handshake timer bounds this phase
    result = await readSocketPrefix(conn, conn.rawSocket, 0, (chunk) => {
      seen.push(chunk);
      const hello = reader.push(chunk);
      return hello === undefined ? undefined : { value: hello, unread: seen.length === 1 ? chunk : Buffer.concat(seen) };
    });
  } catch (err) {
    conn.proxy.logger.warn("not a TLS ClientHello on a TLS passthrough listener", {
      id: conn.id,
      listener: conn.listener.name,
      error: (err as Error).message,
    });
    conn.destroy("protocol-error", err);
    return undefined;
  }
  if (result.kind === "done") return result.value;
  if (result.kind === "ended") conn.destroy("client-closed");
  return undefined;
}
