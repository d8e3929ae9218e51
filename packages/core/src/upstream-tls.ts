/**
 * Upstream STARTTLS: TLS on an upstream socket that is already connected and has carried a
 * plaintext preamble (PostgreSQL's SSLRequest, MySQL's SSLRequest packet, SMTP's STARTTLS).
 * The settings are the target's own `tls` keys, the same the dialer uses for TLS from the first
 * byte; only the moment differs.
 */
import { isIP, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { defineConnectionTimer, type Connection } from "./connection.js";
import { onDialClose, onDialError } from "./dialer.js";
import { UpstreamConnectError, UpstreamResetError, UpstreamTimeoutError } from "./errors.js";
import type { Target } from "./types.js";

/** The deadline of an upstream TLS upgrade (a connection timer: `destroy` releases it). */
export const UPSTREAM_TLS_TIMER = defineConnectionTimer("upstream-tls");

export interface UpstreamTlsOptions {
  /** ALPN protocols to offer; default: the target's `tls.alpn` */
  alpn?: string[] | undefined;
  /**
   * Whether the certificate is checked (chain and name). Default: the target's
   * `tls.rejectUnauthorized !== false`, so on unless the route turned it off. A protocol passes
   * `false` only where its users asked for "encrypt, do not verify" (PostgreSQL `sslmode=require`).
   */
  verify?: boolean | undefined;
  /** handshake deadline in ms (0: none); default: the listener's `connect` timeout */
  timeoutMs?: number | undefined;
}

/**
 * Upgrades `socket`, the connection's upstream, to TLS in place and resolves with the TLS
 * socket once the handshake is done; from then on that socket is `conn.upstream` (the
 * connection destroys it). The name checked and sent as SNI is the target's `tls.servername`,
 * else its host; an IP host is checked against the certificate's IP addresses and sends no SNI.
 * `ca`, `cert` / `key` (client certificate) come from the target's `tls` too; a target without
 * `tls` upgrades with the system roots and the host name.
 *
 * Rejects with `UpstreamConnectError` (handshake or verification failed, cause attached),
 * `UpstreamTimeoutError` (phase `tls-handshake`) or `UpstreamResetError` (closed meanwhile);
 * the TLS socket is destroyed then. Bytes the caller read from `socket` and did not consume
 * are its own business: after a preamble there should be none (injected plaintext).
 */
export function upgradeUpstream(conn: Connection, socket: Socket, target: Target, options: UpstreamTlsOptions = {}): Promise<TLSSocket> {
  const t = target.tls ?? {};
  const verify = options.verify ?? t.rejectUnauthorized !== false;
  const servername = t.servername ?? (isIP(target.host) ? undefined : target.host);
  const alpn = options.alpn ?? t.alpn;
  const secure = tlsConnect({
    socket,
    // the name the certificate is checked against when no servername is sent (an IP target)
    host: t.servername ?? target.host,
    ...(servername !== undefined ? { servername } : {}),
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
    ...(t.cert !== undefined ? { cert: t.cert } : {}),
    ...(t.key !== undefined ? { key: t.key } : {}),
    ...(alpn !== undefined ? { ALPNProtocols: alpn } : {}),
    rejectUnauthorized: verify,
  });
  // the upstream socket's shared handlers, as on a dialed socket: they keep an error from being
  // unhandled and, once a relay owns the socket, report to its connection
  secure.on("error", onDialError);
  secure.on("close", onDialClose);
  if (conn.upstream === socket || conn.upstream === undefined) conn.upstream = secure;
  if (conn.destroyed) secure.destroy();
  const timeoutMs = options.timeoutMs ?? conn.context.timeoutsFor(conn).connect;
  return new Promise<TLSSocket>((resolve, reject) => {
    const done = (err?: Error): void => {
      conn.clearTimer(UPSTREAM_TLS_TIMER);
      secure.off("secureConnect", onSecure);
      secure.off("error", onError);
      secure.off("close", onClose);
      if (err === undefined) return resolve(secure);
      secure.destroy();
      reject(err);
    };
    const onSecure = (): void => done();
    const onError = (err: Error): void =>
      done(new UpstreamConnectError(`TLS to ${target.host}:${target.port} failed: ${err.message}`, { cause: err }));
    const onClose = (): void => done(new UpstreamResetError(`${target.host}:${target.port} closed during the TLS handshake`));
    secure.once("secureConnect", onSecure);
    secure.once("error", onError);
    secure.once("close", onClose);
    if (secure.destroyed) return onClose();
    if (timeoutMs > 0) {
      conn.timer(UPSTREAM_TLS_TIMER, timeoutMs, () =>
        done(new UpstreamTimeoutError("tls-handshake", `TLS handshake with ${target.host}:${target.port} timed out`)),
      );
    }
  });
}
