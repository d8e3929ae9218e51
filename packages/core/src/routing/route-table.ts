/**
 * The static route table: routes from configuration, compiled and sorted once, matched against
 * a routing key with no allocation beyond the result.
 *
 * A route applies when its `listener` is absent or names `key.listener`, and every given `match`
 * field matches the key's field of the same name (a key field that is undefined never matches a
 * route that requires it). A field given as a list matches when any entry matches:
 * - `path`: prefix or segment glob (see path.ts), which yields `params` and `remainder`;
 * - `method`: case-insensitive list;
 * - every other field by the kind of its match key (match-keys.ts): `host`, `sni` and keys
 *   registered as "host-glob" are host globs (glob.ts), `clientIp` and "cidr" keys IPs and CIDRs
 *   (cidr.ts), "glob" keys case-sensitive plain globs; a key nobody registered is a plain glob.
 *
 * Order: `priority` descending, then specificity descending, then declaration order.
 * Specificity is the sum over the route's match fields of 100 000 + the field's score (0-99 999;
 * for a list, its least specific entry), so a route that constrains more fields always ranks
 * above one that constrains fewer, and among routes with the same fields sharper patterns win.
 */
import { ConfigError, ResolveError, RouteNotFoundError } from "../errors.js";
import type { LoadBalancing, RouteConfig, Target, TargetInput } from "../types.js";
import type { RouteKey } from "../vocabulary.js";
import { createBalancer, isLoadBalancing, LOAD_BALANCING } from "../internal/balancer.js";
import { CORE_MATCH_KEYS, type MatchKeyLookup } from "./match-keys.js";
import { IpMatcher } from "./cidr.js";
import { compileGlob, compileHostGlob } from "./glob.js";
import type { GlobMatcher } from "./glob.js";
import { compilePath } from "./path.js";
import type { PathMatch, PathMatcher } from "./path.js";
import type { ResolverAnswer, Route, RouteMatchResult } from "./route.js";
import { parseTarget } from "./target.js";

const FIELD_BASE = 100_000;
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

interface Check {
  readonly field: string;
  readonly test: (value: string) => boolean;
}

interface CompiledRoute {
  readonly route: Route;
  readonly index: number;
  readonly score: number;
  readonly listeners: ReadonlySet<string> | undefined;
  readonly checks: readonly Check[];
  readonly paths: readonly PathMatcher[] | undefined;
}

function list(route: string, field: string, value: unknown): string[] {
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items) || items.length === 0 || items.some((v) => typeof v !== "string")) {
    throw new ConfigError(`route "${route}": ${field} must be a string or a non-empty list of strings`);
  }
  return items as string[];
}

function withRoute<T>(route: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`route "${route}": ${err.message}`, { cause: err });
    throw err;
  }
}

function anyGlob(matchers: readonly GlobMatcher[]): (v: string) => boolean {
  if (matchers.length === 1) return (matchers[0] as GlobMatcher).match;
  return (v) => matchers.some((m) => m.match(v));
}

function compileCheck(
  route: string,
  field: string,
  value: unknown,
  matchKeys: MatchKeyLookup,
): { check?: Check; paths?: PathMatcher[]; score: number } {
  const items = list(route, `match.${field}`, value);
  return withRoute(route, () => {
    if (field === "path") {
      // most specific entry first so params/remainder come from the sharpest match
      const paths = items.map(compilePath).sort((a, b) => b.score - a.score);
      return { paths, score: Math.min(...paths.map((p) => p.score)) };
    }
    if (field === "method") {
      const methods = new Set(items.map((m) => m.trim().toUpperCase()));
      const test = (v: string) => methods.has(v) || methods.has(v.toUpperCase());
      return { check: { field, test }, score: 1_000 - Math.min(methods.size, 999) };
    }
    const kind = matchKeys.kindOf(field) ?? "glob";
    if (kind === "cidr") {
      const ips = new IpMatcher(items);
      return { check: { field, test: (v: string) => ips.matches(v) }, score: ips.minPrefix * 100 };
    }
    const matchers = items.map(kind === "host-glob" ? compileHostGlob : compileGlob);
    if (kind === "glob-any") {
      const any = anyGlob(matchers);
      return { check: { field, test: (v: string) => v.split("\n").some(any) }, score: Math.min(...matchers.map((m) => m.score)) };
    }
    return { check: { field, test: anyGlob(matchers) }, score: Math.min(...matchers.map((m) => m.score)) };
  });
}

function buildRoute(
  name: string,
  inputs: readonly TargetInput[],
  lb: unknown,
  priority: unknown,
  options: Record<string, unknown> | undefined,
  dynamic: boolean,
  config?: RouteConfig,
): Route {
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new ConfigError(`route "${name}": needs at least one target`);
  }
  const targets: readonly Target[] = Object.freeze(inputs.map((t) => withRoute(name, () => parseTarget(t))));
  const policy = lb ?? "round-robin";
  if (!isLoadBalancing(policy)) {
    throw new ConfigError(
      `route "${name}": unknown lb "${String(policy)}" (use ${LOAD_BALANCING.map((s) => `"${s}"`).join(", ")})`,
    );
  }
  const prio = priority ?? 0;
  if (typeof prio !== "number" || !Number.isFinite(prio)) {
    throw new ConfigError(`route "${name}": priority must be a finite number`);
  }
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new ConfigError(`route "${name}": options must be an object`);
  }
  const route: { -readonly [K in keyof Route]: Route[K] } = {
    name,
    targets,
    lb: policy as LoadBalancing,
    priority: prio,
    options: Object.freeze({ ...options }),
    balancer: createBalancer(targets, policy),
    dynamic,
  };
  if (config !== undefined) route.config = config;
  return Object.freeze(route);
}

function compileRoute(config: RouteConfig, index: number, matchKeys: MatchKeyLookup): CompiledRoute {
  if (typeof config !== "object" || config === null) throw new ConfigError(`route ${index} must be an object`);
  const name = config.name ?? `route-${index}`;
  if (typeof name !== "string" || name === "") throw new ConfigError(`route ${index}: name must be a non-empty string`);
  const route = buildRoute(name, config.targets, config.lb, config.priority, config.options, false, config);
  const listeners = config.listener === undefined ? undefined : new Set(list(name, "listener", config.listener));
  const checks: Check[] = [];
  let paths: PathMatcher[] | undefined;
  let score = 0;
  const match = config.match ?? {};
  if (typeof match !== "object" || match === null) throw new ConfigError(`route "${name}": match must be an object`);
  for (const field of Object.keys(match)) {
    const value = match[field];
    if (value === undefined) continue;
    const compiled = compileCheck(name, field, value, matchKeys);
    if (compiled.check !== undefined) checks.push(compiled.check);
    if (compiled.paths !== undefined) paths = compiled.paths;
    score += FIELD_BASE + compiled.score;
  }
  return { route, index, score, listeners, checks, paths };
}

/** Routes from configuration, compiled once; `match` finds the route for a routing key. */
export class RouteTable {
  /** the routes in declaration order */
  readonly routes: readonly Route[];
  readonly #sorted: readonly CompiledRoute[];

  /**
   * Compiles and validates `routes`; throws `ConfigError` naming the route at fault. `matchKeys`
   * says how each `match` field compares (default: core's keys; a proxy passes its registry).
   */
  constructor(routes: readonly RouteConfig[], matchKeys: MatchKeyLookup = CORE_MATCH_KEYS) {
    if (!Array.isArray(routes)) throw new ConfigError("routes must be an array");
    const compiled = routes.map((r, i) => compileRoute(r, i, matchKeys));
    const seen = new Set<string>();
    for (const c of compiled) {
      if (seen.has(c.route.name)) throw new ConfigError(`route name "${c.route.name}" is used twice`);
      seen.add(c.route.name);
    }
    this.routes = Object.freeze(compiled.map((c) => c.route));
    this.#sorted = Object.freeze(
      [...compiled].sort((a, b) => b.route.priority - a.route.priority || b.score - a.score || a.index - b.index),
    );
  }

  /** The routes in match order (priority, specificity, declaration). */
  get ordered(): readonly Route[] {
    return this.#sorted.map((c) => c.route);
  }

  /** The first route (in match order) that matches `key`, or undefined. */
  match(key: RouteKey): RouteMatchResult | undefined {
    next: for (const c of this.#sorted) {
      if (c.listeners !== undefined && !c.listeners.has(key.listener)) continue;
      for (const check of c.checks) {
        const value = key[check.field];
        if (value === undefined || !check.test(value)) continue next;
      }
      if (c.paths === undefined) return { route: c.route, params: NO_PARAMS };
      const path = key.path;
      if (path === undefined) continue;
      let found: PathMatch | null = null;
      for (const p of c.paths) if ((found = p.match(path)) !== null) break;
      if (found === null) continue;
      return { route: c.route, params: found.params, remainder: found.remainder };
    }
    return undefined;
  }

  /** Like `match`, but throws `RouteNotFoundError` (a NOT_FOUND `ResolveError`) when nothing matches. */
  matchOrThrow(key: RouteKey): RouteMatchResult {
    const found = this.match(key);
    if (found !== undefined) return found;
    const parts = Object.keys(key)
      .filter((k) => k !== "clientIp" && k !== "listener" && key[k] !== undefined)
      .map((k) => `${k}=${JSON.stringify(key[k])}`);
    throw new RouteNotFoundError(`no route matches on listener "${key.listener}" (${parts.join(", ")})`);
  }
}

interface AnswerMemo {
  readonly name: string;
  readonly lb: unknown;
  readonly options: unknown;
  /** strings as given, objects as shallow copies (so in-place mutation is noticed) */
  readonly inputs: readonly unknown[];
  readonly route: Route;
}

/** Routes built from answer objects, so a cached answer keeps one balancer (and its rotation). */
const answerRoutes = new WeakMap<object, AnswerMemo>();

function snapshot(input: unknown): unknown {
  return typeof input === "object" && input !== null ? { ...input } : input;
}

function sameInput(before: unknown, now: unknown): boolean {
  if (typeof before !== "object" || before === null || typeof now !== "object" || now === null) return before === now;
  const a = before as Record<string, unknown>;
  const b = now as Record<string, unknown>;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/**
 * Builds a `dynamic: true` Route from what a resolver answered: a target, a list of targets, or
 * `{ targets, lb?, name?, options? }`. `name` is used unless the answer names itself. A
 * malformed answer is the resolver's fault at run time: it throws `ResolveError` INTERNAL with
 * the `ConfigError` as `cause`.
 *
 * When the same answer object comes back unchanged (a cached answer), the same Route is
 * returned, so its balancer keeps rotating instead of restarting at the first target.
 */
export function routeFromAnswer(answer: ResolverAnswer, name: string): Route {
  let inputs: readonly TargetInput[];
  let lb: unknown;
  let options: Record<string, unknown> | undefined;
  let routeName = name;
  if (typeof answer === "string") inputs = [answer];
  else if (Array.isArray(answer)) inputs = answer;
  else if (typeof answer === "object" && answer !== null && "targets" in answer) {
    inputs = answer.targets;
    lb = answer.lb;
    options = answer.options;
    routeName = answer.name ?? name;
  } else inputs = [answer];
  const memo = typeof answer === "object" && answer !== null ? answerRoutes.get(answer) : undefined;
  if (
    memo !== undefined &&
    memo.name === routeName &&
    memo.lb === lb &&
    memo.options === options &&
    Array.isArray(inputs) &&
    memo.inputs.length === inputs.length &&
    memo.inputs.every((m, i) => sameInput(m, inputs[i]))
  ) {
    return memo.route;
  }
  let route: Route;
  try {
    route = buildRoute(routeName, inputs, lb, 0, options, true);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ResolveError("INTERNAL", `resolver gave an invalid answer: ${err.message}`, { cause: err });
  }
  if (typeof answer === "object" && answer !== null) {
    answerRoutes.set(answer, { name: routeName, lb, options, inputs: inputs.map(snapshot), route });
  }
  return route;
}
