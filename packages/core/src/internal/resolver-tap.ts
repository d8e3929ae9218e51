import { ResolveError } from "../errors.js";
import type { ProxyHooks } from "../hooks.js";
import { Stage } from "../stage.js";
import type { RouteKey } from "../vocabulary.js";
import type { MatchKeyLookup } from "../routing/match-keys.js";
import { CachedResolver, defaultKeyOf } from "../routing/resolver-cache.js";
import type { ResolveContext, Resolver, ResolverAnswer, Route } from "../routing/route.js";
import { routeFromAnswer } from "../routing/route-table.js";
import { formatTarget } from "../routing/target.js";

/** "host=a.example listener=web" — a key for messages (the client address left out). */
export function describeKey(key: RouteKey): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(key)) if (v !== undefined && k !== "clientIp") parts.push(`${k}=${v}`);
  return parts.join(" ");
}

/**
 * Taps a dynamic resolver on `onResolve` at Stage.ROUTE (before the route table), optionally
 * behind a TTL cache keyed by the proxy's match keys. Its errors keep their ResolveError code; anything else becomes INTERNAL.
 */
export function tapResolver(hooks: ProxyHooks, resolver: Resolver, ttl: number, matchKeys: MatchKeyLookup): void {
  // the cache key reads the match keys when it is computed: protocols register theirs later
  const r = ttl > 0 ? new CachedResolver(resolver, { ttlMs: ttl, keyOf: (key) => defaultKeyOf(key, matchKeys) }) : resolver;
  const routes = new DynamicRoutes();
  hooks.onResolve.tapPromise({ name: "Resolver", stage: Stage.ROUTE }, async ({ key, connection }) => {
    const ctx: ResolveContext = { connectionId: connection.id, signal: connection.signal };
    let answer;
    try {
      answer = await r.resolve(key, ctx);
    } catch (err) {
      if (err instanceof ResolveError) throw err;
      throw new ResolveError("INTERNAL", `resolver failed: ${(err as Error)?.message ?? err}`, { cause: err });
    }
    // "resolver" unless the answer names itself: a name made from the key (host, path) would
    // give every distinct request its own route, and stats() an entry per path
    return { route: routes.get(answer, "resolver"), params: {} };
  });
}

/** The options as a string for the route's identity; undefined when they cannot be serialized. */
function optionsId(options: Readonly<Record<string, unknown>>): string | undefined {
  try {
    return JSON.stringify(options);
  } catch {
    return undefined;
  }
}

/**
 * One Route per resolver answer (by key, name, targets and options), so its balancer state
 * (round-robin position, least-connections counts) survives across lookups, and an answer that
 * changes its name or options gets a new Route. Bounded; oldest dropped first.
 */
class DynamicRoutes {
  readonly #routes = new Map<string, Route>();

  get(answer: ResolverAnswer, name: string): Route {
    const fresh = routeFromAnswer(answer, name);
    const options = optionsId(fresh.options);
    if (options === undefined) return fresh;
    const id = `${name}|${fresh.name}|${fresh.lb}|${fresh.targets.map(formatTarget).join(",")}|${options}`;
    const known = this.#routes.get(id);
    if (known) return known;
    if (this.#routes.size >= 10_000) {
      const oldest = this.#routes.keys().next().value;
      if (oldest !== undefined) this.#routes.delete(oldest);
    }
    this.#routes.set(id, fresh);
    return fresh;
  }
}
