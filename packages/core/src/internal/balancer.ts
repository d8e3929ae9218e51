/**
 * Load balancers: pick one target of a route, skipping targets the caller excludes (already
 * tried, marked down).
 *
 * - round-robin: strict rotation; a pick continues after the last target picked, so skipping
 *   an excluded target does not give its neighbour two turns in a row.
 * - least-connections: the target with the fewest connections (counted through
 *   `acquire`/`release`: the connect loop takes the slot as soon as it picks a target, so dials
 *   in progress count too); ties go to the next one in round-robin order. A target whose connect
 *   failed (`reportConnect`) is passed over for `CONNECT_FAILURE_DOWN_MS` unless every target
 *   left is in that state; a successful connect ends it at once.
 * - random: uniform among the targets not excluded, drawn from `rng` (default `Math.random`).
 *
 * `pick` does not count a connection by itself: call `acquire` when one is assigned, `release`
 * once when it ends.
 */
import { ConfigError } from "../errors.js";
import type { LoadBalancing, Target } from "../types.js";
import type { Balancer } from "../routing/route.js";

/** The load-balancing policies `createBalancer` knows. */
export const LOAD_BALANCING: readonly LoadBalancing[] = Object.freeze(["round-robin", "least-connections", "random"]);

/** True when `lb` names a known policy. */
export function isLoadBalancing(lb: unknown): lb is LoadBalancing {
  return typeof lb === "string" && (LOAD_BALANCING as readonly string[]).includes(lb);
}

class RoundRobinBalancer implements Balancer {
  protected readonly targets: readonly Target[];
  protected cursor = 0;
  constructor(targets: readonly Target[]) {
    this.targets = targets;
  }
  pick(exclude?: ReadonlySet<Target>): Target | undefined {
    const n = this.targets.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.cursor + i) % n;
      const t = this.targets[idx] as Target;
      if (exclude !== undefined && exclude.has(t)) continue;
      this.cursor = (idx + 1) % n;
      return t;
    }
    return undefined;
  }
  acquire(_target: Target): void {}
  release(_target: Target): void {}
}

/** How long least-connections passes over a target after a failed connect (ms). */
export const CONNECT_FAILURE_DOWN_MS = 2000;

export interface BalancerOptions {
  /** how long least-connections passes over a target after a failed connect (default CONNECT_FAILURE_DOWN_MS) */
  downMs?: number;
  /** the clock for that, in ms (default `performance.now`); inject one in tests */
  now?: () => number;
}

/**
 * A balancer that wants to hear how connects to the targets it picked went (least-connections
 * does). Report through `reportConnect`, which ignores balancers without these methods.
 */
export interface ConnectFeedback {
  connectFailed(target: Target): void;
  connected(target: Target): void;
}

/** Tells `balancer` whether a connect to `target` succeeded (for least-connections' down marks). */
export function reportConnect(balancer: Balancer, target: Target, ok: boolean): void {
  const b = balancer as Balancer & Partial<ConnectFeedback>;
  if (ok) b.connected?.(target);
  else b.connectFailed?.(target);
}

class LeastConnectionsBalancer extends RoundRobinBalancer implements ConnectFeedback {
  readonly #index = new Map<Target, number>();
  readonly #active: number[];
  /** until when (clock ms) a target is passed over after a failed connect; 0 when it is not */
  readonly #downUntil: number[];
  /** targets with a down mark (possibly expired): while 0, `pick` reads no clock */
  #marked = 0;
  readonly #downMs: number;
  readonly #now: () => number;
  constructor(targets: readonly Target[], options: BalancerOptions) {
    super(targets);
    this.#active = targets.map(() => 0);
    this.#downUntil = targets.map(() => 0);
    this.#downMs = options.downMs ?? CONNECT_FAILURE_DOWN_MS;
    this.#now = options.now ?? (() => performance.now());
    targets.forEach((t, i) => {
      if (!this.#index.has(t)) this.#index.set(t, i);
    });
  }
  override pick(exclude?: ReadonlySet<Target>): Target | undefined {
    const n = this.targets.length;
    const now = this.#marked > 0 ? this.#now() : 0;
    let best = -1;
    let bestCount = Infinity;
    let bestDown = true;
    for (let i = 0; i < n; i++) {
      const idx = (this.cursor + i) % n;
      if (exclude !== undefined && exclude.has(this.targets[idx] as Target)) continue;
      const count = this.#active[idx] as number;
      const down = this.#marked > 0 && this.#isDown(idx, now);
      // a target that is up beats one that is down, whatever their counts
      if (down === bestDown ? count < bestCount : bestDown) {
        best = idx;
        bestCount = count;
        bestDown = down;
      }
    }
    if (best < 0) return undefined;
    this.cursor = (best + 1) % n;
    return this.targets[best];
  }
  #isDown(idx: number, now: number): boolean {
    const until = this.#downUntil[idx] as number;
    if (until === 0) return false;
    if (until > now) return true;
    this.#downUntil[idx] = 0;
    this.#marked--;
    return false;
  }
  connectFailed(target: Target): void {
    const idx = this.#index.get(target);
    if (idx === undefined || !(this.#downMs > 0)) return;
    if (this.#downUntil[idx] === 0) this.#marked++;
    // never 0, which means "up"
    this.#downUntil[idx] = Math.max(1, this.#now() + this.#downMs);
  }
  connected(target: Target): void {
    const idx = this.#index.get(target);
    if (idx === undefined || this.#downUntil[idx] === 0) return;
    this.#downUntil[idx] = 0;
    this.#marked--;
  }
  override acquire(target: Target): void {
    const idx = this.#index.get(target);
    if (idx !== undefined) this.#active[idx] = (this.#active[idx] as number) + 1;
  }
  override release(target: Target): void {
    const idx = this.#index.get(target);
    if (idx !== undefined && (this.#active[idx] as number) > 0) this.#active[idx] = (this.#active[idx] as number) - 1;
  }
}

class RandomBalancer implements Balancer {
  readonly #targets: readonly Target[];
  readonly #rng: () => number;
  constructor(targets: readonly Target[], rng: () => number) {
    this.#targets = targets;
    this.#rng = rng;
  }
  #draw(n: number): number {
    const r = Math.floor(this.#rng() * n);
    return r < 0 ? 0 : r >= n ? n - 1 : r;
  }
  pick(exclude?: ReadonlySet<Target>): Target | undefined {
    const targets = this.#targets;
    if (exclude === undefined || exclude.size === 0) return targets[this.#draw(targets.length)];
    let available = 0;
    for (const t of targets) if (!exclude.has(t)) available++;
    if (available === 0) return undefined;
    let k = this.#draw(available);
    for (const t of targets) {
      if (exclude.has(t)) continue;
      if (k-- === 0) return t;
    }
    return undefined;
  }
  acquire(_target: Target): void {}
  release(_target: Target): void {}
}

/**
 * Creates a balancer over `targets` (at least one) with policy `lb`. `rng` returns numbers in
 * [0, 1) for the random policy (inject a seeded one in tests); `options` tune least-connections'
 * down marks. Throws `ConfigError` on an unknown policy or an empty target list.
 */
export function createBalancer(
  targets: readonly Target[],
  lb: LoadBalancing,
  rng: () => number = Math.random,
  options: BalancerOptions = {},
): Balancer {
  if (!Array.isArray(targets) || targets.length === 0) {
    throw new ConfigError("a balancer needs at least one target");
  }
  const list = Object.isFrozen(targets) ? targets : Object.freeze([...targets]);
  switch (lb) {
    case "round-robin":
      return new RoundRobinBalancer(list);
    case "least-connections":
      return new LeastConnectionsBalancer(list, options);
    case "random":
      return new RandomBalancer(list, rng);
    default:
      throw new ConfigError(
        `unknown load balancing "${String(lb)}" (use ${LOAD_BALANCING.map((s) => `"${s}"`).join(", ")})`,
      );
  }
}
