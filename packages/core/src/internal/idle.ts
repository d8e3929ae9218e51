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
 *
 * One interval serves every timeout: the shortest one asked for. A chunk's stamp can be as old
 * as the interval that was running when it was taken, which is longer than the current one once
 * a shorter timeout shrank the interval. So the sweeper remembers when each replaced interval
 * ended, and a stamp from before that gets that interval as its slack (stamps taken since get
 * the current one): never early, and a short timeout is not delayed by a long one.
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

/** An interval that was replaced by a shorter one: stamps up to `until` may be `slack` ms old. */
interface Replaced {
  until: number;
  slack: number;
}

export class IdleSweeper {
  readonly #connections: Iterable<IdleWatched>;
  #timer: NodeJS.Timeout | undefined;
  #intervalMs = 0;
  /** replaced intervals, oldest first (so `until` ascends and `slack` descends) */
  #replaced: Replaced[] = [];
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
    const now = (clock.now = Math.floor(performance.now()));
    const interval = Math.min(1000, Math.max(10, Math.floor(idleMs / 8)));
    if (this.#timer === undefined || interval < this.#intervalMs) {
      if (this.#timer !== undefined) {
        clearInterval(this.#timer);
        // stamps taken until now were refreshed by the longer interval
        this.#replaced.push({ until: now, slack: this.#intervalMs });
      }
      this.#intervalMs = interval;
      this.#timer = setInterval(() => this.#sweep(), interval);
      this.#timer.unref();
    }
    return now;
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
    this.#replaced = [];
  }

  /** How old a stamp `at` can be: the interval that was running when it was taken. */
  #slackFor(at: number): number {
    // `until` is a floored time: a stamp in that same millisecond may still be the older interval's
    for (const r of this.#replaced) if (at <= r.until) return r.slack;
    return this.#intervalMs;
  }

  #sweep(): void {
    const now = (clock.now = Math.floor(performance.now()));
    const replaced = this.#replaced;
    const newest = replaced.length > 0 ? replaced[replaced.length - 1]!.until : -Infinity;
    let oldest = Infinity;
    for (const c of this.#connections) {
      if (!(c.idleMs > 0)) continue;
      const at = c.activeAt;
      // a chunk stamped just before a refresh carries a time up to one interval old; ">" rather
      // than ">=" because the clock is floored to the millisecond
      const slack = at > newest ? this.#intervalMs : this.#slackFor(at);
      if (now - at > c.idleMs + slack) c.destroy("idle-timeout");
      else if (at < oldest) oldest = at;
    }
    // forget replaced intervals no stamp still dates from (new stamps are never older)
    let drop = 0;
    while (drop < replaced.length && replaced[drop]!.until < oldest) drop++;
    if (drop > 0) replaced.splice(0, drop);
  }
}
