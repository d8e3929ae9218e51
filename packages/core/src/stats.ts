import type { CloseInfo, CloseReason } from "./vocabulary.js";

export interface Counter {
  active: number;
  total: number;
}

export interface ProxyStats {
  active: number;
  total: number;
  bytesIn: number;
  bytesOut: number;
  listeners: Record<string, Counter>;
  routes: Record<string, Counter>;
  closeReasons: Partial<Record<CloseReason, number>>;
}

/**
 * Routes whose counters are kept: named routes are few, but a resolver's answers may name
 * themselves after anything; beyond this, routes with no active connection are forgotten
 * (oldest first), so the table stays bounded.
 */
const MAX_ROUTES = 1000;

/** Drops idle routes, oldest first, until the table is back to MAX_ROUTES (or none is idle). */
function forgetIdle(routes: Map<string, Counter>): void {
  for (const [name, c] of routes) {
    if (routes.size <= MAX_ROUTES) return;
    if (c.active <= 0) routes.delete(name);
  }
}

/** Counters behind `proxy.stats()`; the only place they change. */
export class StatsCollector {
  #active = 0;
  #total = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  readonly #listeners = new Map<string, Counter>();
  readonly #routes = new Map<string, Counter>();
  readonly #reasons = new Map<CloseReason, number>();

  opened(listener: string): void {
    this.#active++;
    this.#total++;
    const c = counter(this.#listeners, listener);
    c.active++;
    c.total++;
  }

  /** A connection is on `route` now (it was on `from`, for a keep-alive connection that moved). */
  routed(route: string, from?: string): void {
    if (from !== undefined) {
      const old = this.#routes.get(from);
      if (old) old.active--;
    }
    const c = counter(this.#routes, route);
    c.active++;
    c.total++;
    if (this.#routes.size > MAX_ROUTES) forgetIdle(this.#routes);
  }

  closed(listener: string, route: string | undefined, info: CloseInfo): void {
    this.#active--;
    counter(this.#listeners, listener).active--;
    if (route !== undefined) {
      const c = this.#routes.get(route);
      if (c) c.active--;
    }
    this.#bytesIn += info.bytesIn;
    this.#bytesOut += info.bytesOut;
    this.#reasons.set(info.reason, (this.#reasons.get(info.reason) ?? 0) + 1);
  }

  snapshot(): ProxyStats {
    return {
      active: this.#active,
      total: this.#total,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      listeners: Object.fromEntries([...this.#listeners].map(([k, v]) => [k, { ...v }])),
      routes: Object.fromEntries([...this.#routes].map(([k, v]) => [k, { ...v }])),
      closeReasons: Object.fromEntries(this.#reasons),
    };
  }
}

function counter(map: Map<string, Counter>, key: string): Counter {
  let c = map.get(key);
  if (!c) map.set(key, (c = { active: 0, total: 0 }));
  return c;
}
