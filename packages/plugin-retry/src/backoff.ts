/** Exponential backoff bounds: the n-th retry waits at most `min(max, base * 2^n)` ms. */
export interface BackoffOptions {
  /** ms for the first retry's ceiling (default 100) */
  base: number;
  /** ceiling for every retry in ms (default 2000) */
  max: number;
}

/** The ceiling of the `retryIndex`-th retry (0 for the first): `min(max, base * 2^retryIndex)`. */
export function backoffCeiling(retryIndex: number, opts: BackoffOptions): number {
  const n = Math.max(0, Math.floor(retryIndex));
  // 2^n overflows to Infinity for large n, which min() turns into max
  return Math.min(opts.max, opts.base * 2 ** n);
}

/**
 * "Full jitter" (AWS architecture blog): a uniformly random delay in `[0, ceiling]`, so
 * retrying clients spread out instead of hammering a recovering upstream in lockstep.
 * `random` is injectable for tests and must return a number in [0, 1).
 */
export function backoffDelay(retryIndex: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(retryIndex, opts);
  return Math.min(ceiling, Math.floor(random() * (ceiling + 1)));
}
