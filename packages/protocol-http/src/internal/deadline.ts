/**
 * Session deadlines without a timer per session. Every session has one `Deadline` (what it is
 * waiting for: a request head, the next request, an upstream head, body bytes…); deadlines of
 * the same duration are kept in one list per proxy, in the order they were armed — which is
 * also the order they fall due — and each list has one timer, set for its first entry. So an
 * idle keep-alive connection costs its place in a list, not a Timeout and the closures around it.
 *
 * Like the per-session timer this replaces, re-arming is lazy: `set` and `clear` only move the
 * entry between lists (no setTimeout/clearTimeout per request); a list's timer that fires early
 * (its first entry was cleared or moved) re-arms itself for whatever is first now, or stops
 * when the list is empty. A deadline never fires before its time: an entry expires once the
 * monotonic clock reached its due time; the timer's own precision (~1 ms) is the only lateness.
 */

/** Whoever a deadline belongs to: called once when it expires (not again until set again). */
export interface DeadlineOwner {
  onDeadline(kind: number): void;
}

/** monotonic milliseconds (an integer: a small integer for the first 12 days of the process) */
const now = (): number => Math.floor(performance.now());

/** One list of same-duration deadlines, in due order, with one timer for its first entry. */
class DeadlineList {
  readonly ms: number;
  head: Deadline | undefined = undefined;
  tail: Deadline | undefined = undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  readonly #fire = (): void => this.#expire();

  constructor(ms: number) {
    this.ms = ms;
  }

  append(d: Deadline): void {
    d.list = this;
    d.prev = this.tail;
    d.next = undefined;
    if (this.tail === undefined) this.head = d;
    else this.tail.next = d;
    this.tail = d;
    if (this.#timer === undefined) this.#arm(this.ms);
  }

  remove(d: Deadline): void {
    const { prev, next } = d;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    d.prev = d.next = d.list = undefined;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#fire, ms);
    // client sockets keep the process alive, a pending deadline alone does not
    this.#timer.unref();
  }

  #expire(): void {
    this.#timer = undefined;
    const t = now();
    let d = this.head;
    while (d !== undefined && d.due <= t) {
      this.remove(d);
      d.owner.onDeadline(d.kind);
      d = this.head;
    }
    // an owner may have armed a deadline of this duration while expiring (that armed the timer)
    if (d !== undefined && this.#timer === undefined) this.#arm(d.due - t);
  }
}

/** The deadline lists of one proxy (ProtocolRuntime), one per duration in use. */
export class DeadlineTimers {
  readonly #lists = new Map<number, DeadlineList>();

  /** @internal */
  list(ms: number): DeadlineList {
    let l = this.#lists.get(ms);
    if (l === undefined) {
      l = new DeadlineList(ms);
      this.#lists.set(ms, l);
    }
    return l;
  }
}

/** One session's deadline: one due time and what it means (`kind`) at a time. */
export class Deadline {
  kind = 0;
  due = 0;
  /** @internal list links */
  list: DeadlineList | undefined = undefined;
  /** @internal */
  prev: Deadline | undefined = undefined;
  /** @internal */
  next: Deadline | undefined = undefined;
  readonly owner: DeadlineOwner;
  readonly #timers: DeadlineTimers;

  constructor(timers: DeadlineTimers, owner: DeadlineOwner) {
    this.#timers = timers;
    this.owner = owner;
  }

  /** Expire `ms` from now with `kind` (replacing any pending due time); 0 disables. */
  set(ms: number, kind: number): void {
    if (!(ms > 0)) return this.clear();
    this.kind = kind;
    // +1: `now()` is floored, so the arm time may be up to 1 ms later than it reads
    this.due = now() + ms + 1;
    const list = this.list;
    // already last in the list of this duration: a later due time keeps the order
    if (list !== undefined && list.ms === ms && list.tail === this) return;
    list?.remove(this);
    this.#timers.list(ms).append(this);
  }

  clear(): void {
    this.list?.remove(this);
  }

  /** The session is gone (same as clear: there is no timer of its own to release). */
  dispose(): void {
    this.list?.remove(this);
  }
}
