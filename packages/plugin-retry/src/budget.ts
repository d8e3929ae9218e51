/** Options of the retry budget. */
export interface BudgetOptions {
  /** retries may add at most this fraction of the requests seen in the window (default 0.2) */
  ratio: number;
  /** the sliding window in ms (default 10 000) */
  windowMs: number;
  /** retries always allowed per second of window, however few requests there were (default 3) */
  minPerSecond: number;
}

const BUCKETS = 10;

/**
 * A retry budget over a sliding window (Finagle/Linkerd style): within the last `windowMs`,
 * retries may be at most `max(ratio * requests, minPerSecond * windowSeconds)`. During an
 * outage every request fails, so retries stay ~20% of the load instead of multiplying it.
 *
 * The window is kept as 10 buckets; the clock is injected so the arithmetic is testable.
 */
export class RetryBudget {
  readonly options: Readonly<BudgetOptions>;
  readonly #now: () => number;
  readonly #bucketMs: number;
  readonly #requests = new Array<number>(BUCKETS).fill(0);
  readonly #retries = new Array<number>(BUCKETS).fill(0);
  /** absolute index of the newest bucket (time / bucketMs) */
  #head: number;

  constructor(options: BudgetOptions, now: () => number = Date.now) {
    this.options = Object.freeze({ ...options });
    this.#now = now;
    this.#bucketMs = Math.max(1, options.windowMs / BUCKETS);
    this.#head = Math.floor(now() / this.#bucketMs);
  }

  #advance(): number {
    const idx = Math.floor(this.#now() / this.#bucketMs);
    if (idx > this.#head) {
      const steps = Math.min(BUCKETS, idx - this.#head);
      for (let i = 1; i <= steps; i++) {
        const b = (this.#head + i) % BUCKETS;
        this.#requests[b] = 0;
        this.#retries[b] = 0;
      }
      this.#head = idx;
    }
    return this.#head % BUCKETS;
  }

  /** Counts one original request (a first attempt). */
  recordRequest(): void {
    this.#requests[this.#advance()]!++;
  }

  /** Requests seen in the window. */
  get requests(): number {
    this.#advance();
    return this.#requests.reduce((a, b) => a + b, 0);
  }

  /** Retries granted in the window. */
  get retries(): number {
    this.#advance();
    return this.#retries.reduce((a, b) => a + b, 0);
  }

  /** How many retries the window allows in total right now. */
  get limit(): number {
    const floor = this.options.minPerSecond * (this.options.windowMs / 1000);
    return Math.max(Math.floor(this.options.ratio * this.requests), Math.floor(floor));
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is spent. */
  tryAcquire(): boolean {
    const b = this.#advance();
    if (this.retries >= this.limit) return false;
    this.#retries[b]!++;
    return true;
  }
}
