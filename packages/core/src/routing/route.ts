import type { LoadBalancing, RouteConfig, Target } from "../types.js";
import type { RouteKey } from "../vocabulary.js";

/** Picks targets for one route and tracks what least-connections needs. */
export interface Balancer {
  /** next target, skipping `exclude`; undefined when every target is excluded */
  pick(exclude?: ReadonlySet<Target>): Target | undefined;
  /** a connection to `target` opened (least-connections bookkeeping) */
  acquire(target: Target): void;
  /** ... and closed */
  release(target: Target): void;
}

/** A compiled route: what a resolver answers with. */
export interface Route {
  readonly name: string;
  readonly targets: readonly Target[];
  readonly lb: LoadBalancing;
  readonly priority: number;
  /** protocol- and plugin-specific per-route options */
  readonly options: Readonly<Record<string, unknown>>;
  readonly balancer: Balancer;
  /** true when targets came from a dynamic resolver: the SSRF guard applies */
  readonly dynamic: boolean;
  /** the configuration it was built from, when it came from the route table */
  readonly config?: RouteConfig;
}

/** A route matched against a key, with what the match extracted. */
export interface RouteMatchResult {
  readonly route: Route;
  /** named path params (":id") and glob captures */
  readonly params: Readonly<Record<string, string>>;
  /** the part of the path after a prefix match ("/api" on "/api/x" → "/x") */
  readonly remainder?: string;
}

/** Context given to a resolver. */
export interface ResolveContext {
  readonly connectionId: string;
  readonly signal: AbortSignal;
}

/**
 * A resolver maps a routing key to where it lives. Throw `ResolveError` (NOT_FOUND,
 * UNAVAILABLE, TIMEOUT, FORBIDDEN, INTERNAL) when it cannot answer.
 */
export interface Resolver {
  resolve(key: RouteKey, context: ResolveContext): Promise<ResolverAnswer> | ResolverAnswer;
}

/** A resolver may answer with one target, several, or a route-like object. */
export type ResolverAnswer =
  | string
  | Target
  | Array<string | Target>
  | { targets: Array<string | Target>; lb?: LoadBalancing; name?: string; options?: Record<string, unknown> };
