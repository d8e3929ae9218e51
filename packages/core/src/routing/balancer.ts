/**
 * Load balancers: pick one target of a route, skipping targets the caller excludes (already
 * tried, marked down).
 *
 * - round-robin: strict rotation; a pick continues after the last target picked, so skipping
 *   an excluded target does not give its neighbour two turns in a row.
 * - least-connections: the target with the fewest open connections (counted through
 *   `acquire`/`release`, which the dialer calls); ties go to the next one in round-robin order.
 * - random: uniform among the targets not excluded, drawn from `rng` (default `Math.random`).
 *
 * `pick` does not count a connection by itself: call `acquire` when one opens, `release` once
 * when it closes.
 */
import { ConfigError } from "../errors.js";
import type { LoadBalancing, Target } from "../types.js";
import type { Balancer } from "./route.js";

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

class LeastConnectionsBalancer extends RoundRobinBalancer {
  readonly #index = new Map<Target, number>();
  readonly #active: number[];
  constructor(targets: readonly Target[]) {
    super(targets);
    this.#active = targets.map(() => 0);
    targets.forEach((t, i) => {
      if (!this.#index.has(t)) this.#index.set(t, i);
    });
  }
  override pick(exclude?: ReadonlySet<Target>): Target | undefined {
    const n = this.targets.length;
    let best = -1;
    let bestCount = Infinity;
    for (let i = 0; i < n; i++) {
      const idx = (this.cursor + i) % n;
      if (exclude !== undefined && exclude.has(this.targets[idx] as Target)) continue;
      const count = this.#active[idx] as number;
      if (count < bestCount) {
        best = idx;
        bestCount = count;
      }
    }
    if (best < 0) return undefined;
    this.cursor = (best + 1) % n;
    return this.targets[best];
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
 * [0, 1) for the random policy (inject a seeded one in tests). Throws `ConfigError` on an
 * unknown policy or an empty target list.
 */
export function createBalancer(
  targets: readonly Target[],
  lb: LoadBalancing,
  rng: () => number = Math.random,
): Balancer {
  if (!Array.isArray(targets) || targets.length === 0) {
    throw new ConfigError("a balancer needs at least one target");
  }
  const list = Object.isFrozen(targets) ? targets : Object.freeze([...targets]);
  switch (lb) {
    case "round-robin":
      return new RoundRobinBalancer(list);
    case "least-connections":
      return new LeastConnectionsBalancer(list);
    case "random":
      return new RandomBalancer(list, rng);
    default:
      throw new ConfigError(
        `unknown load balancing "${String(lb)}" (use ${LOAD_BALANCING.map((s) => `"${s}"`).join(", ")})`,
      );
  }
}
