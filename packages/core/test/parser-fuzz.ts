/**
 * What the seeded fuzz tests of core's byte parsers share (proxy-protocol-fuzz, client-hello-fuzz):
 * the campaign from the environment, random helpers over one seeded generator, and the loop
 * that runs every case and fails on a case that spins.
 *
 * FUZZ_SEED=<n>: the first case's seed (case i uses FUZZ_SEED + i); FUZZ_CASES=<n>: how many.
 */
import { expect } from "chai";

export type Rnd = () => number;
export const int = (r: Rnd, n: number): number => Math.floor(r() * n);
export const pick = <T>(r: Rnd, items: readonly T[]): T => items[int(r, items.length)]!;
export const bytes = (r: Rnd, n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(r, 256)));

/** The campaign: seeds from the environment, or the file's fixed default list. */
export function campaign(defaultSeed: number, defaultCases: number): { base: number; cases: number } {
  return {
    base: process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : defaultSeed,
    cases: process.env.FUZZ_CASES !== undefined ? Number(process.env.FUZZ_CASES) : defaultCases,
  };
}

/** Runs `check` for seeds base..base+cases-1; no case may take a second (a parser that spins). */
export function runCases(base: number, cases: number, check: (seed: number) => void): void {
  let slowest = 0;
  for (let i = 0; i < cases; i++) {
    const t0 = Date.now();
    check((base + i) >>> 0);
    slowest = Math.max(slowest, Date.now() - t0);
  }
  expect(slowest, `slowest case took ${slowest} ms`).to.be.below(1000);
}
