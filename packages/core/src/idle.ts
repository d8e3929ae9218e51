/**
 * Idle timeouts for relayed connections without a timer per socket.
 *
 * A `setTimeout` per socket (what `socket.setTimeout` does) costs a Timeout object per idle
 * connection and a re-arm per chunk. Instead every relayed connection records the time of its
 * last chunk on a coarse clock, and one interval per proxy sweeps the open connections. Node's
 * own HTTP server checks its header and request timeouts the same way
 * (`connectionsCheckingInterval`).
 *
 * Precision: the sweep runs every idleMs/8 (at least 10 ms, at most 1 s) and the clock is read
 * at each sweep, so a connection closes between idleMs and idleMs + 2 sweep intervals after its
 * last chunk — never early.
 */

/** Coarse milliseconds, refreshed at each sweep and whenever a connection starts being watched. */
export const clock = { now: Math.floor(performance.now()) };

export interface IdleWatched {
  /** 0 when not watched */
  idleMs: number;
  /** clock.now at the last chunk */
  activeAt: number;
  destroy(reason: "idle-timeout"): void;
}

export class IdleSweeper {
  readonly #connections: Iterable<IdleWatched>;
  #timer: NodeJS.Timeout | undefined;
  #intervalMs = 0;
  #watched = 0;

  constructor(connections: Iterable<IdleWatched>) {
    this.#connections = connections;
  }

  /** Number of connections being watched (for tests and diagnostics). */
  get watched(): number {
    return this.#watched;
  }

  /** Starts watching one more connection with this idle timeout; returns the clock to stamp it with. */
  watch(idleMs: number): number {
    this.#watched++;
    const interval = Math.min(1000, Math.max(10, Math.floor(idleMs / 8)));
    if (this.#timer === undefined || interval < this.#intervalMs) {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#intervalMs = interval;
      this.#timer = setInterval(() => this.#sweep(), interval);
      this.#timer.unref();
    }
    return (clock.now = Math.floor(performance.now()));
  }

  /** One watched connection ended; the interval stops with the last one. */
  unwatch(): void {
    if (--this.#watched > 0) return;
    this.#watched = 0;
    this.stop();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#intervalMs = 0;
  }

  #sweep(): void {
    const now = (clock.now = Math.floor(performance.now()));
    // a chunk stamped just before a refresh carries a time up to one interval old
    const slack = this.#intervalMs;
    for (const c of this.#connections) {
      if (c.idleMs > 0 && now - c.activeAt >= c.idleMs + slack) c.destroy("idle-timeout");
    }
  }
}
