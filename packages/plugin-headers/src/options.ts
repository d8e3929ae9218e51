import { ConfigError, IpMatcher } from "@switchyard/core";
import { validateRules, validateRuleSet, type HeaderRules, type HeaderRuleSet } from "./rules.js";

/** Options of `HeadersPlugin`. Every field is optional; defaults are in the README. */
export interface HeadersOptions {
  /** name this proxy uses in Via and for loop detection (default "switchyard") */
  pseudonym?: string;
  /** add a Via entry to requests and responses (default true) */
  via?: boolean;
  /** answer 508 when a request's Via already names our pseudonym (default true; needs `via`) */
  loopDetection?: boolean;
  /** write X-Forwarded-For/-Proto/-Host/-Port (default true) */
  xForwarded?: boolean;
  /** write an RFC 7239 Forwarded field (default false) */
  forwarded?: boolean;
  /** peers (IPs or CIDRs) whose X-Forwarded-* and Forwarded fields are kept and extended (default none) */
  trustedProxies?: string[];
  /** rewrite Host to the target (`true`) or to a fixed value (a string); default false: pass through */
  rewriteHost?: boolean | string;
  /** rules for every request going upstream */
  request?: HeaderRules;
  /** rules for every response going downstream */
  response?: HeaderRules;
  /** rules per route name (applied after the global rules, before `route.options.headers`) */
  routes?: Record<string, HeaderRuleSet>;
}

/** What a route may carry in `options.headers`. */
export interface RouteHeadersOptions extends HeaderRuleSet {
  rewriteHost?: boolean | string;
}

export interface ResolvedHeadersOptions {
  readonly pseudonym: string;
  readonly via: boolean;
  readonly loopDetection: boolean;
  readonly xForwarded: boolean;
  readonly forwarded: boolean;
  /** trusted peers; undefined when none are configured */
  readonly trusted: IpMatcher | undefined;
  readonly rewriteHost: boolean | string;
  readonly request: HeaderRules;
  readonly response: HeaderRules;
  readonly routes: ReadonlyMap<string, HeaderRuleSet>;
}

const KNOWN = new Set([
  "pseudonym",
  "via",
  "loopDetection",
  "xForwarded",
  "forwarded",
  "trustedProxies",
  "rewriteHost",
  "request",
  "response",
  "routes",
]);

const PSEUDONYM = /^[!#$%&'*+\-.^_`|~0-9A-Za-z:[\]]+$/;

function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new ConfigError(`HeadersPlugin: ${name} must be a boolean`);
  return v;
}

export function checkRewriteHost(v: unknown, where: string): boolean | string {
  if (typeof v === "boolean") return v;
  if (typeof v === "string" && v.length > 0 && !/[\s\0,]/.test(v)) return v;
  throw new ConfigError(`${where}: rewriteHost must be a boolean or a host[:port] string`);
}

/** Validates options (throws `ConfigError` naming the field) and applies defaults. */
export function resolveOptions(input: HeadersOptions | undefined): ResolvedHeadersOptions {
  const o = (input ?? {}) as Record<string, unknown>;
  if (typeof o !== "object" || Array.isArray(o)) throw new ConfigError("HeadersPlugin: options must be an object");
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new ConfigError(`HeadersPlugin: unknown option "${k}"`);
  const pseudonym = o.pseudonym ?? "switchyard";
  if (typeof pseudonym !== "string" || !PSEUDONYM.test(pseudonym)) {
    throw new ConfigError("HeadersPlugin: pseudonym must be a token (letters, digits, -._~ ...)");
  }
  const tp = o.trustedProxies ?? [];
  if (!Array.isArray(tp) || tp.some((x) => typeof x !== "string")) {
    throw new ConfigError("HeadersPlugin: trustedProxies must be an array of IPs or CIDRs");
  }
  const routes = new Map<string, HeaderRuleSet>();
  if (o.routes !== undefined) {
    if (typeof o.routes !== "object" || o.routes === null || Array.isArray(o.routes)) {
      throw new ConfigError("HeadersPlugin: routes must be an object keyed by route name");
    }
    for (const [name, set] of Object.entries(o.routes)) routes.set(name, validateRuleSet(set, `HeadersPlugin: routes.${name}`));
  }
  return Object.freeze({
    pseudonym,
    via: bool(o.via, "via", true),
    loopDetection: bool(o.loopDetection, "loopDetection", true),
    xForwarded: bool(o.xForwarded, "xForwarded", true),
    forwarded: bool(o.forwarded, "forwarded", false),
    trusted: trustedMatcher(tp as string[]),
    rewriteHost: o.rewriteHost === undefined ? false : checkRewriteHost(o.rewriteHost, "HeadersPlugin"),
    request: validateRules(o.request, "HeadersPlugin: request"),
    response: validateRules(o.response, "HeadersPlugin: response"),
    routes,
  });
}

/** Validates `route.options.headers`; `optionsWhere` names the route's options (`route "api": options`). */
export function resolveRouteOptions(input: unknown, optionsWhere: string): RouteHeadersOptions {
  const where = `${optionsWhere}.headers`;
  if (input === undefined) return {};
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw new ConfigError(`${where}: must be an object`);
  const out: RouteHeadersOptions = validateRuleSet(input, where, ["rewriteHost"]);
  const rewriteHost = (input as Record<string, unknown>).rewriteHost;
  if (rewriteHost !== undefined) out.rewriteHost = checkRewriteHost(rewriteHost, where);
  return out;
}

function trustedMatcher(list: string[]): IpMatcher | undefined {
  if (list.length === 0) return undefined;
  try {
    return new IpMatcher(list);
  } catch (err) {
    throw new ConfigError(`HeadersPlugin: trustedProxies: ${(err as Error).message}`, { cause: err });
  }
}
