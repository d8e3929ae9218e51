/**
 * Reading and discarding the rest of an upstream response body that goes nowhere (a tap turned
 * the response into a 204, 304 or 1xx). The client's exchange is over; the pooled socket stays
 * busy here until the body's end is read (→ back to the pool) or the drain gives up (→ closed):
 * more than DRAIN_LIMIT bytes, a close-delimited body, a parse error, the upstream closing, or
 * no byte for the route's bodyTimeout (DRAIN_IDLE when that is disabled).
 */
import type { BodyKind } from "./body-kind.js";
import type { RawHead } from "./internal/parser.js";
import type { PooledSocket, SocketOwner } from "./pool.js";

/** Most body bytes read (held ones included) to save an upstream connection. */
export const DRAIN_LIMIT = 64 * 1024;
/** Idle limit of a drain when the route disabled bodyTimeout. */
const DRAIN_IDLE = 5000;

/** What an upstream socket's response framer reports to (an exchange's attempt, or a drain). */
export interface ResponseSink {
  onResponseHead(head: RawHead): BodyKind;
  onResponseBody(chunk: Buffer): void;
  onResponseTrailers(trailers: string[]): void;
  onResponseComplete(): void;
}

/** The per-socket framer state (attempt.ts's UpstreamState). */
export interface UpstreamFraming {
  readonly framer: { execute(chunk: Buffer): number; stop: boolean };
  sink: ResponseSink | undefined;
}

export class ResponseDrain implements SocketOwner, ResponseSink {
  readonly #ps: PooledSocket;
  readonly #up: UpstreamFraming;
  readonly #proxy: { readonly closing: boolean };
  #budget: number;
  #complete = false;
  #timer: NodeJS.Timeout | undefined;

  /**
   * Takes over `ps`, a reusable socket whose framer is in the middle of a body; `held`: body
   * bytes already received and dropped. No socket goes back to the pool of a closing proxy.
   */
  constructor(ps: PooledSocket, up: UpstreamFraming, proxy: { readonly closing: boolean }, held: number, idleMs: number) {
    this.#ps = ps;
    this.#up = up;
    this.#proxy = proxy;
    this.#budget = DRAIN_LIMIT - held;
    ps.owner = this;
    up.sink = this;
    // background work nobody waits for: it never keeps the process alive
    ps.socket.unref();
    ps.socket.resume();
    this.#timer = setTimeout(() => this.#close(), idleMs > 0 ? idleMs : DRAIN_IDLE);
    this.#timer.unref();
  }

  onUpstreamData(chunk: Buffer): void {
    this.#timer?.refresh();
    const n = this.#up.framer.execute(chunk);
    if (n < 0 || this.#budget < 0) return this.#close();
    // bytes after the response's end: the socket is out of step, never reused
    if (this.#complete) this.#release(n === chunk.length);
  }

  onUpstreamEnd(): void {
    this.#close();
  }

  onUpstreamClose(): void {
    this.#close();
  }

  onUpstreamDrain(): void {}

  onResponseHead(): BodyKind {
    throw new Error("response head while draining a body");
  }

  onResponseBody(chunk: Buffer): void {
    this.#budget -= chunk.length;
    if (this.#budget < 0) this.#up.framer.stop = true;
  }

  onResponseTrailers(): void {}

  onResponseComplete(): void {
    this.#complete = true;
    this.#up.framer.stop = true;
  }

  #release(clean: boolean): void {
    this.#done();
    const ps = this.#ps;
    if (!clean || this.#proxy.closing) return ps.pool.discard(ps);
    ps.socket.ref();
    ps.pool.release(ps, true);
  }

  #close(): void {
    this.#done();
    this.#ps.pool.discard(this.#ps);
  }

  #done(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#up.sink = undefined;
  }
}
