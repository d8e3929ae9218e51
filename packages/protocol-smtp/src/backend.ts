/**
 * The proxy's SMTP client side toward one backend: writes commands and message bytes, reads
 * replies in order (multi-line, split anywhere: see reply.ts), each wait bounded. A backend
 * that closes, resets, times out or sends garbage fails the waiting call; one that goes away
 * while nobody waits calls `onLost` (the session answers the client with 421).
 */
import type { Socket } from "node:net";
import { upgradeUpstream, UpstreamResetError, UpstreamTimeoutError, type Connection, type Route, type Target } from "@switchyard/core";
import type { Capabilities } from "./capabilities.js";
import { ReplyParser, type SmtpReply } from "./reply.js";
import { SmtpTimer } from "./timers.js";

/** How long a backend left with QUIT may take to read it before its socket is destroyed. */
const QUIT_GRACE_MS = 1000;

export class BackendLink {
  /** the plain socket, or the TLS socket after `startTls` */
  socket: Socket;
  readonly route: Route;
  readonly target: Target;
  /** what the backend advertised in its last EHLO answer */
  caps: Capabilities = new Map();
  /** XFORWARD keywords to send before each MAIL (empty: none) */
  xforward: string[] = [];
  /** set by the session: the backend went away while no reply was awaited */
  onLost: ((err: Error) => void) | undefined;
  readonly #conn: Connection;
  #parser = new ReplyParser();
  readonly #replies: SmtpReply[] = [];
  #waiter: { resolve: (r: SmtpReply) => void; reject: (e: Error) => void } | undefined;
  #drainWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;

  constructor(conn: Connection, socket: Socket, route: Route, target: Target) {
    this.#conn = conn;
    this.socket = socket;
    this.route = route;
    this.target = target;
    this.#attach(socket);
  }

  readonly #onError = (err: Error): void => this.#fail(err);
  readonly #onClose = (): void => this.#fail(new UpstreamResetError("backend closed the connection"));
  readonly #onEnd = (): void => this.#fail(new UpstreamResetError("backend ended the connection"));
  readonly #onDrain = (): void => {
    const w = this.#drainWaiter;
    this.#drainWaiter = undefined;
    w?.resolve();
  };
  readonly #onData = (chunk: Buffer): void => {
    try {
      for (const r of this.#parser.push(chunk)) this.#replies.push(r);
    } catch (err) {
      return this.#fail(err as Error);
    }
    this.#deliver();
  };

  #attach(socket: Socket): void {
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
    socket.on("end", this.#onEnd);
    socket.on("drain", this.#onDrain);
    socket.on("data", this.#onData);
    socket.resume();
  }

  #detach(socket: Socket): void {
    socket.pause();
    socket.off("close", this.#onClose);
    socket.off("end", this.#onEnd);
    socket.off("drain", this.#onDrain);
    socket.off("data", this.#onData);
    // the error handler stays: the plain socket under TLS must never throw unhandled
  }

  /**
   * Upgrades the backend session to TLS after its `220` to STARTTLS (RFC 3207) with core's
   * upstream STARTTLS: the target's `tls` keys (ca, servername, client certificate), the
   * certificate verified unless the target says `rejectUnauthorized: false`. Anything the backend
   * sent in plaintext after its 220 is dropped. Rejects on a handshake failure or after `timeoutMs`.
   */
  async startTls(timeoutMs: number): Promise<void> {
    const plain = this.socket;
    this.#detach(plain);
    this.#replies.length = 0;
    this.#parser = new ReplyParser();
    const secure = await upgradeUpstream(this.#conn, plain, this.target, { timeoutMs });
    this.socket = secure;
    this.#attach(secure);
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Writes bytes as they are; false: wait for `drained()` before writing more. */
  write(data: string | Buffer): boolean {
    if (this.#failure) return true;
    return this.socket.write(data);
  }

  /** Resolves when the socket can take more; rejects when the backend failed or took nothing for `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#drainWaiter = {
        resolve: () => {
          this.#conn.clearTimer(SmtpTimer.BACKEND_DRAIN);
          resolve();
        },
        reject,
      };
      this.#conn.timer(SmtpTimer.BACKEND_DRAIN, timeoutMs, () =>
        this.#fail(new UpstreamTimeoutError("write", `backend took no data for ${timeoutMs} ms`)),
      );
    });
  }

  /** The next reply within `timeoutMs`. */
  reply(timeoutMs: number): Promise<SmtpReply> {
    if (this.#replies.length > 0) return Promise.resolve(this.#replies.shift()!);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<SmtpReply>((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#conn.timer(SmtpTimer.BACKEND_REPLY, timeoutMs, () =>
        this.#fail(new UpstreamTimeoutError("reply", `backend did not reply within ${timeoutMs} ms`)),
      );
    });
  }

  /** Sends one command line (CRLF added) and waits for its reply. */
  command(line: string, timeoutMs: number): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  /** Ends the backend session politely (QUIT, no wait) and closes the socket. */
  quit(): void {
    if (!this.#failure) this.socket.end("QUIT\r\n");
    this.#failure ??= new UpstreamResetError("backend session ended by the proxy");
    this.onLost = undefined;
    this.socket.destroySoon();
    // the socket no longer belongs to the connection: a backend that does not read gets 1 s
    const socket = this.socket;
    setTimeout(() => socket.destroy(), QUIT_GRACE_MS).unref();
  }

  /** Closes at once (the message must not be completed). */
  destroy(): void {
    this.#failure ??= new UpstreamResetError("backend session aborted by the proxy");
    this.onLost = undefined;
    this.socket.destroy();
  }

  #deliver(): void {
    const w = this.#waiter;
    if (w === undefined || this.#replies.length === 0) return;
    this.#waiter = undefined;
    this.#conn.clearTimer(SmtpTimer.BACKEND_REPLY);
    w.resolve(this.#replies.shift()!);
  }

  #fail(err: Error): void {
    if (this.#failure === undefined) this.#failure = err;
    else if (this.#waiter === undefined && this.#drainWaiter === undefined) return;
    this.#conn.clearTimer(SmtpTimer.BACKEND_REPLY);
    this.#conn.clearTimer(SmtpTimer.BACKEND_DRAIN);
    this.socket.destroy();
    const w = this.#waiter;
    const d = this.#drainWaiter;
    this.#waiter = undefined;
    this.#drainWaiter = undefined;
    if (w || d) {
      w?.reject(this.#failure);
      d?.reject(this.#failure);
    } else {
      const lost = this.onLost;
      this.onLost = undefined;
      lost?.(this.#failure);
    }
  }
}
