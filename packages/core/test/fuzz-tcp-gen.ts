/**
 * Case generation for the TCP relay fuzz test (fuzz-tcp.test.ts): from one seed, a scripted
 * client, a scripted upstream and an upstream variant (how the upstream connect goes).
 */
import { seededRandom } from "@switchyard/test-utils";

export type Step =
  /** write `sizes` as separate chunks (0-byte writes included); `drain`: wait for drain when write() says so */
  | { op: "write"; sizes: number[]; drain: boolean; gapMs: number }
  /** stop reading for `ms` (backpressure); the script goes on meanwhile */
  | { op: "pause"; ms: number }
  | { op: "sleep"; ms: number }
  /** wait for the other side's FIN (or a close), at most `capMs` */
  | { op: "waitFin"; capMs: number }
  /** half-close: send our FIN, keep reading */
  | { op: "end" }
  /** resetAndDestroy: RST */
  | { op: "reset" }
  /** stop doing anything (keep reading, never write or end again) */
  | { op: "silent" };

/**
 * live: one accepting upstream runs the upstream script.
 * retry-live: a refused port first, then the live upstream (a retry tap asks for another attempt).
 * slow-live: a port whose connect never completes first (connect timeout), then the live upstream.
 * refuse: a closed port only. reset: accepts, then resets at once. blackhole: connect never completes.
 */
export type Variant = "live" | "retry-live" | "slow-live" | "refuse" | "reset" | "blackhole";

export interface TcpCase {
  seed: number;
  variant: Variant;
  /** connect attempts the retry tap adds after a failure (0: none) */
  retries: number;
  retryDelayMs: number;
  client: Step[];
  /** only run by the live variants */
  upstream: Step[];
  /** where in the shared random pool each side's byte stream starts */
  clientOffset: number;
  upstreamOffset: number;
}

/** longest pause of reading / sleep in a script: well under the idle timeout */
export const MAX_PAUSE_MS = 150;

export function generateCase(seed: number): TcpCase {
  const r = seededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const x = r();
  const variant: Variant =
    x < 0.6 ? "live" : x < 0.7 ? "retry-live" : x < 0.77 ? "slow-live" : x < 0.85 ? "refuse" : x < 0.93 ? "reset" : "blackhole";
  const retries = variant === "retry-live" || variant === "slow-live" ? int(1, 2) : variant === "live" ? 0 : int(0, 1);
  return {
    seed,
    variant,
    retries,
    retryDelayMs: int(0, 40),
    client: genScript(r, int),
    upstream: genScript(r, int),
    clientOffset: int(0, POOL_SIZE - 1),
    upstreamOffset: int(0, POOL_SIZE - 1),
  };
}

function genScript(r: () => number, int: (lo: number, hi: number) => number): Step[] {
  const steps: Step[] = [];
  const y = r();
  // total bytes this side sends: mostly small, sometimes up to ~1 MB
  let budget = y < 0.15 ? 0 : y < 0.45 ? int(1, 2048) : y < 0.7 ? int(2049, 70_000) : y < 0.9 ? int(70_001, 300_000) : int(300_001, 1_000_000);
  const actions = int(0, 6);
  let sleptMs = 0;
  for (let i = 0; i < actions; i++) {
    const z = r();
    if (z < 0.5) {
      const part = i === actions - 1 ? budget : Math.floor(budget * r());
      budget -= part;
      const n = int(1, 8);
      const sizes: number[] = [];
      let left = part;
      for (let k = 0; k < n; k++) {
        const s = k === n - 1 ? left : r() < 0.15 ? 0 : Math.floor(left * r());
        sizes.push(s);
        left -= s;
      }
      steps.push({ op: "write", sizes, drain: r() < 0.5, gapMs: r() < 0.3 ? int(0, 20) : 0 });
    } else if (z < 0.65) steps.push({ op: "pause", ms: int(1, MAX_PAUSE_MS) });
    else if (z < 0.85) {
      const ms = Math.min(int(0, MAX_PAUSE_MS), 400 - sleptMs);
      sleptMs += ms;
      steps.push({ op: "sleep", ms });
    } else steps.push({ op: "waitFin", capMs: int(10, 300) });
  }
  if (budget > 0) steps.push({ op: "write", sizes: [budget], drain: r() < 0.5, gapMs: 0 });
  const t = r();
  if (t < 0.55) steps.push({ op: "end" });
  else if (t < 0.65) steps.push({ op: "end" }, { op: "waitFin", capMs: int(10, 300) });
  else if (t < 0.8) steps.push({ op: "reset" });
  else if (t < 0.85) steps.push({ op: "end" }, { op: "sleep", ms: int(0, 100) }, { op: "reset" });
  else steps.push({ op: "silent" });
  return steps;
}

/** true when the script ends its sending side (a FIN) before any reset */
export function finishes(steps: Step[]): boolean {
  for (const s of steps) {
    if (s.op === "end") return true;
    if (s.op === "reset") return false;
  }
  return false;
}

export function resets(steps: Step[]): boolean {
  return steps.some((s) => s.op === "reset");
}

export function isSilent(steps: Step[]): boolean {
  return steps[steps.length - 1]?.op === "silent";
}

export function showSteps(steps: Step[]): string {
  return steps
    .map((s) => {
      switch (s.op) {
        case "write":
          return `write[${s.sizes.join("+")}${s.drain ? ",drain" : ""}${s.gapMs ? `,gap ${s.gapMs}` : ""}]`;
        case "pause":
          return `pause ${s.ms}ms`;
        case "sleep":
          return `sleep ${s.ms}ms`;
        case "waitFin":
          return `waitFin ≤${s.capMs}ms`;
        default:
          return s.op;
      }
    })
    .join(", ");
}

/**
 * Every byte stream is a window of one random pool, starting at a per-side offset: the
 * expected bytes are known without keeping copies, and a reordered, dropped or duplicated
 * chunk shows up as a mismatch. Its size is prime, above the largest stream (~1 MB).
 */
export const POOL_SIZE = 1_048_583;
const pool = Buffer.allocUnsafe(POOL_SIZE);
{
  const r = seededRandom(0xb17e5);
  for (let i = 0; i < POOL_SIZE; i += 4) {
    const v = Math.floor(r() * 4294967296);
    for (let k = 0; k < 4 && i + k < POOL_SIZE; k++) pool[i + k] = (v >>> (8 * k)) & 0xff;
  }
}

/** bytes [from, from + n) of the stream that starts at `offset` of the pool */
export function streamBytes(offset: number, from: number, n: number): Buffer {
  const start = (offset + from) % POOL_SIZE;
  if (start + n <= POOL_SIZE) return pool.subarray(start, start + n);
  return Buffer.concat([pool.subarray(start), pool.subarray(0, n - (POOL_SIZE - start))]);
}
