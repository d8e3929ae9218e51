/**
 * mulberry32: a small seeded PRNG returning floats in [0, 1). The same seed gives the same
 * sequence everywhere, so a fuzz case or a random-policy test replays from its seed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `fn` over `items`, at most `concurrency` at a time, in order of start. */
export async function forEachConcurrently<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), items.length) }, worker));
}

/** The seeds of a fuzz run split into batches: case i has seed `base + i`. */
export function seedBatches(base: number, cases: number, batch: number): Array<{ first: number; seeds: number[] }> {
  const out: Array<{ first: number; seeds: number[] }> = [];
  for (let first = 0; first < cases; first += batch) {
    out.push({ first, seeds: Array.from({ length: Math.min(batch, cases - first) }, (_, i) => (base + first + i) >>> 0) });
  }
  return out;
}
