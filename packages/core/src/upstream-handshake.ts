/**
 * The upstream handshake phase: between the connect and the relay, a protocol talks to the
 * backend itself (PostgreSQL startup and authentication, MySQL's greeting and auth exchange, an
 * SMTP greeting) with its own reader and its own answers to the client. This phase owns what a
 * protocol should not have to rebuild each time: a failure of the upstream socket (error, reset,
 * close) is reported to the protocol at once — nothing waits for a relay to notice — the phase
 * has a deadline, the socket may be upgraded to TLS after a plaintext preamble, and `finish()`
 * removes everything the phase installed before the sockets go to `relay`.
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { defineConnectionTimer, type Connection } from "./connection.js";
import { ProxyError, UpstreamResetError, UpstreamTimeoutError } from "./errors.js";
import type { Target } from "./types.js";
import { upgradeUpstream, type UpstreamTlsOptions } from "./upstream-tls.js";

/** The deadline of the upstream handshake phase (a connection timer: `destroy` releases it). */
export const UPSTREAM_HANDSHAKE_TIMER = defineConnectionTimer("upstream-handshake");

export interface UpstreamHandshakeOptions {
  /** deadline of the whole phase in ms, TLS upgrade included (0: none) */
  timeoutMs: number;
  /**
   * Called once, at once, when the upstream fails before `finish()`: an error on the socket
   * (`UpstreamResetError` with the cause), the socket closing (`UpstreamResetError`) or the
   * deadline (`UpstreamTimeoutError`, phase `upstream-handshake`). The upstream socket is
   * destroyed by then; the protocol answers its client. Not called once the connection is
   * destroyed (its client went away), nor for a failed `upgrade()`, which rejects instead.
   *
   * A FIN from the backend is not a failure: the protocol's reader sees it, and may still hand
   * over to the relay with `upstreamEnded` (the client gets the FIN after the bytes).
   */
  onFailure: (err: ProxyError) => void;
}

/**
 * One upstream handshake. Start it right after `connectUpstream` resolves, before the first
 * write to the backend; call `finish()` when the protocol is done and hand the socket to
 * `relay` with what it read and did not pass on (`upstreamHead`, `upstreamEnded`).
 *
 * ```ts
 * const { socket, target } = await proxy.connectUpstream(conn, match, undefined, { tls: "starttls" });
 * const phase = new UpstreamHandshake(conn, socket, target, { timeoutMs: 30_000, onFailure: (err) => answer(err) });
 * socket.write(preamble);                 // e.g. PostgreSQL's SSLRequest, then read its "S"
 * const secure = await phase.upgrade();   // the target's tls keys, verified by default
 * // … the protocol's own exchange over phase.socket …
 * relay(conn, phase.finish(), { idleMs, upstreamHead: unread, upstreamEnded: sawFin });
 * ```
 */
export class UpstreamHandshake {
  readonly target: Target;
  readonly #conn: Connection;
  readonly #onFailure: (err: ProxyError) => void;
  #socket: Socket;
  #over = false;

  constructor(conn: Connection, socket: Socket, target: Target, options: UpstreamHandshakeOptions) {
    this.#conn = conn;
    this.#socket = socket;
    this.target = target;
    this.#onFailure = options.onFailure;
    if (conn.upstream === undefined) conn.upstream = socket;
    this.#watch(socket);
    if (options.timeoutMs > 0) {
      conn.timer(UPSTREAM_HANDSHAKE_TIMER, options.timeoutMs, () =>
        this.#fail(new UpstreamTimeoutError("upstream-handshake", `upstream handshake with ${target.host}:${target.port} timed out`)),
      );
    }
    // a socket that died before the phase began
    if (socket.destroyed) queueMicrotask(this.#onClose);
  }

  /** the upstream socket: the dialed one, or the TLS socket after `upgrade()` */
  get socket(): Socket {
    return this.#socket;
  }

  /** true once the phase failed or finished */
  get over(): boolean {
    return this.#over;
  }

  /**
   * Upstream STARTTLS: upgrades the socket in place after the protocol's plaintext preamble,
   * with the target's `tls` keys (see `upgradeUpstream`), within `options.timeoutMs` (default:
   * the connect timeout) and the phase's own deadline. Resolves with the TLS socket, which is
   * `socket` from then on. A failed handshake rejects and ends the phase (`onFailure` is not
   * called for it); the phase's deadline passing meanwhile calls `onFailure` and rejects too.
   */
  async upgrade(options: UpstreamTlsOptions = {}): Promise<TLSSocket> {
    if (this.#over) throw new UpstreamResetError("upstream handshake already over");
    const plain = this.#socket;
    // from here a failure of the raw socket reaches the TLS socket, which the upgrade watches
    this.#unwatch(plain);
    try {
      const secure = await upgradeUpstream(this.#conn, plain, this.target, options);
      if (this.#over) {
        secure.destroy();
        throw new UpstreamResetError("upstream handshake ended during the TLS upgrade");
      }
      this.#socket = secure;
      this.#watch(secure);
      return secure;
    } catch (err) {
      this.#end();
      throw err;
    }
  }

  /**
   * Ends the phase: removes its listeners and its deadline, and returns the socket (for
   * `relay`). The protocol's own listeners on it are its to remove.
   */
  finish(): Socket {
    if (!this.#over) {
      this.#end();
      this.#unwatch(this.#socket);
    }
    return this.#socket;
  }

  readonly #onError = (err: Error): void => {
    this.#fail(err instanceof ProxyError ? err : new UpstreamResetError(`upstream failed during the handshake: ${err.message}`, { cause: err }));
  };

  readonly #onClose = (): void => {
    this.#fail(new UpstreamResetError("upstream closed the connection during the handshake"));
  };

  #watch(socket: Socket): void {
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  #unwatch(socket: Socket): void {
    socket.off("error", this.#onError);
    socket.off("close", this.#onClose);
  }

  #end(): void {
    this.#over = true;
    this.#conn.clearTimer(UPSTREAM_HANDSHAKE_TIMER);
  }

  #fail(err: ProxyError): void {
    if (this.#over) return;
    this.#end();
    this.#unwatch(this.#socket);
    this.#socket.destroy();
    // during an upgrade the TLS socket is already the connection's upstream
    const upstream = this.#conn.upstream;
    if (upstream !== undefined && upstream !== this.#socket && !this.#conn.destroyed) upstream.destroy();
    if (this.#conn.destroyed) return;
    this.#onFailure(err);
  }
}
