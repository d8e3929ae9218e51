import { ConfigError } from "@switchyard/core";
import type { BackoffOptions } from "./backoff.js";
import type { BudgetOptions } from "./budget.js";

/** What may trigger a retry. */
export type RetryCondition = "connect" | "reset" | "timeout" | "5xx" | "429";
export const RETRY_CONDITIONS: readonly RetryCondition[] = ["connect", "reset", "timeout", "5xx", "429"];

/** Options of `RetryPlugin`; every field is optional. */
export interface RetryOptions {
  /** retries after the first attempt (default 2; 0 disables retrying) */
  retries?: number;
  /** exponential backoff with full jitter: the n-th retry waits random [0, min(max, base·2ⁿ)] ms */
  backoff?: Partial<BackoffOptions>;
  /** what is retried (default ["connect", "reset", "timeout", "5xx"]) */
  on?: RetryCondition[];
  /** statuses retried when their class ("5xx" or "429") is in `on` (default [429, 502, 503, 504]) */
  statuses?: number[];
  /** longest Retry-After honoured, in ms; longer values are cut to this (default 5000) */
  maxRetryAfter?: number;
  /** retry budget over a sliding window, or false to disable (default { ratio: 0.2, windowMs: 10000, minPerSecond: 3 }) */
  budget?: Partial<BudgetOptions> | false;
  /** largest request body buffered to make an idempotent request replayable, in bytes (default 65536) */
  bufferLimit?: number;
}

/** What a route may set in `options.retry` (per-route overrides), or `false` to disable retries there. */
export type RouteRetryOptions = Pick<RetryOptions, "retries" | "backoff" | "on" | "statuses" | "maxRetryAfter" | "bufferLimit"> | false;

export interface RetryPolicy {
  readonly retries: number;
  readonly backoff: Readonly<BackoffOptions>;
  readonly on: ReadonlySet<RetryCondition>;
  readonly statuses: ReadonlySet<number>;
  readonly maxRetryAfter: number;
  readonly bufferLimit: number;
}

export interface ResolvedRetryOptions extends RetryPolicy {
  readonly budget: Readonly<BudgetOptions> | false;
}

export const DEFAULTS = Object.freeze({
  retries: 2,
  backoff: Object.freeze({ base: 100, max: 2000 }),
  on: Object.freeze(["connect", "reset", "timeout", "5xx"] as RetryCondition[]),
  statuses: Object.freeze([429, 502, 503, 504]),
  maxRetryAfter: 5000,
  budget: Object.freeze({ ratio: 0.2, windowMs: 10_000, minPerSecond: 3 }),
  bufferLimit: 64 * 1024,
});

const KNOWN = new Set(["retries", "backoff", "on", "statuses", "maxRetryAfter", "budget", "bufferLimit"]);
const ROUTE_KNOWN = new Set(["retries", "backoff", "on", "statuses", "maxRetryAfter", "bufferLimit"]);

function nonNegInt(v: unknown, where: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new ConfigError(`${where} must be a non-negative integer`);
  return v;
}

function nonNegNumber(v: unknown, where: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new ConfigError(`${where} must be a non-negative number`);
  return v;
}

function object(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(`${where} must be an object`);
  return v as Record<string, unknown>;
}

function resolvePolicy(o: Record<string, unknown>, base: RetryPolicy, where: string): RetryPolicy {
  let backoff = base.backoff;
  if (o.backoff !== undefined) {
    const b = object(o.backoff, `${where}backoff`);
    backoff = Object.freeze({
      base: nonNegNumber(b.base, `${where}backoff.base`, base.backoff.base),
      max: nonNegNumber(b.max, `${where}backoff.max`, base.backoff.max),
    });
  }
  let on = base.on;
  if (o.on !== undefined) {
    if (!Array.isArray(o.on) || o.on.some((c) => !RETRY_CONDITIONS.includes(c as RetryCondition))) {
      throw new ConfigError(`${where}on must be an array of ${RETRY_CONDITIONS.map((c) => `"${c}"`).join(", ")}`);
    }
    on = new Set(o.on as RetryCondition[]);
  }
  let statuses = base.statuses;
  if (o.statuses !== undefined) {
    if (!Array.isArray(o.statuses) || o.statuses.some((s) => !Number.isInteger(s) || (s as number) < 100 || (s as number) > 599)) {
      throw new ConfigError(`${where}statuses must be an array of HTTP status codes`);
    }
    statuses = new Set(o.statuses as number[]);
  }
  return Object.freeze({
    retries: nonNegInt(o.retries, `${where}retries`, base.retries),
    backoff,
    on,
    statuses,
    maxRetryAfter: nonNegNumber(o.maxRetryAfter, `${where}maxRetryAfter`, base.maxRetryAfter),
    bufferLimit: nonNegInt(o.bufferLimit, `${where}bufferLimit`, base.bufferLimit),
  });
}

const DEFAULT_POLICY: RetryPolicy = Object.freeze({
  retries: DEFAULTS.retries,
  backoff: DEFAULTS.backoff,
  on: new Set(DEFAULTS.on),
  statuses: new Set(DEFAULTS.statuses),
  maxRetryAfter: DEFAULTS.maxRetryAfter,
  bufferLimit: DEFAULTS.bufferLimit,
});

/** Validates options (throws `ConfigError` naming the field) and applies defaults. */
export function resolveOptions(input: RetryOptions | undefined): ResolvedRetryOptions {
  const o = object(input ?? {}, "RetryPlugin: options");
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new ConfigError(`RetryPlugin: unknown option "${k}"`);
  const policy = resolvePolicy(o, DEFAULT_POLICY, "RetryPlugin: ");
  let budget: BudgetOptions | false = DEFAULTS.budget;
  if (o.budget === false) budget = false;
  else if (o.budget !== undefined) {
    const b = object(o.budget, "RetryPlugin: budget");
    const ratio = nonNegNumber(b.ratio, "RetryPlugin: budget.ratio", DEFAULTS.budget.ratio);
    const windowMs = nonNegNumber(b.windowMs, "RetryPlugin: budget.windowMs", DEFAULTS.budget.windowMs);
    if (windowMs < 10) throw new ConfigError("RetryPlugin: budget.windowMs must be at least 10");
    budget = Object.freeze({ ratio, windowMs, minPerSecond: nonNegNumber(b.minPerSecond, "RetryPlugin: budget.minPerSecond", DEFAULTS.budget.minPerSecond) });
  }
  return Object.freeze({ ...policy, budget });
}

/** Validates `route.options.retry` against the plugin's policy; `false` disables retries. */
export function resolveRoutePolicy(input: unknown, base: RetryPolicy, optionsWhere: string): RetryPolicy {
  if (input === undefined) return base;
  if (input === false) return Object.freeze({ ...base, retries: 0 });
  const where = `${optionsWhere}.retry.`;
  const o = object(input, `${optionsWhere}.retry`);
  for (const k of Object.keys(o)) if (!ROUTE_KNOWN.has(k)) throw new ConfigError(`${where}${k} is not a per-route retry option`);
  return resolvePolicy(o, base, where);
}
