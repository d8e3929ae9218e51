/**
 * One lazily re-armed timer per session. `set` only records a due time (one Date.now()); the
 * underlying setTimeout is created when none is pending or the new due time is earlier, and on
 * firing re-arms itself for whatever is left. Per-request phase changes cost no timer churn.
 */
export class Deadline {
  kind = 0;
  #due = 0;
  #at = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #onExpire: (kind: number) => void;
  readonly #fire: () => void;

  constructor(onExpire: (kind: number) => void) {
    this.#onExpire = onExpire;
    this.#fire = () => {
      this.#timer = undefined;
      if (this.#due === 0) return;
      const now = Date.now();
      if (now >= this.#due) {
        this.#due = 0;
        this.#onExpire(this.kind);
      } else this.#arm(this.#due - now);
    };
  }

  /** Expire `ms` from now with `kind`; 0 disables. */
  set(ms: number, kind: number): void {
    if (!(ms > 0)) {
      this.#due = 0;
      return;
    }
    const due = Date.now() + ms;
    this.#due = due;
    this.kind = kind;
    if (this.#timer === undefined || this.#at > due) this.#arm(ms);
  }

  clear(): void {
    this.#due = 0;
  }

  dispose(): void {
    this.#due = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#at = Date.now() + ms;
    this.#timer = setTimeout(this.#fire, ms);
  }
}
