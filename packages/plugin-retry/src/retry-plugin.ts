import {
  ConfigError,
  getHeader,
  isHttpRequest,
  isHttpResponse,
  Stage,
  type Proxy,
  type ProxyPlugin,
  type ProxyRequest,
  type Route,
  type UpstreamResponse,
} from "@switchyard/core";
import { RetryBudget } from "./budget.js";
import { hooksFor, type RetryHooks } from "./hooks.js";
import { resolveOptions, resolveRoutePolicy, type ResolvedRetryOptions, type RetryOptions, type RetryPolicy } from "./options.js";
import { classify, decide, IDEMPOTENT_METHODS, type AttemptOutcome } from "./policy.js";

const PLUGIN_NAME = "RetryPlugin";

/** What the plugin stores in `request.meta.RetryPlugin`. */
export interface RetryMeta {
  /** idempotent by method or by `route.options.idempotent` */
  idempotent: boolean;
  /** retries scheduled so far for this request */
  retries: number;
}

/**
 * Safe retries: connect failures for every protocol and method; resets, timeouts and chosen
 * statuses only for idempotent, replayable HTTP requests; never once a response byte went
 * downstream. Exponential backoff with full jitter, Retry-After, and a retry budget.
 *
 * Taps `onRequest` and `onUpstreamResponse` at `Stage.DECIDE`, after transformations.
 */
export class RetryPlugin implements ProxyPlugin {
  readonly name = PLUGIN_NAME;
  #opts: ResolvedRetryOptions;
  #budget: RetryBudget | undefined;
  #routeCache = new WeakMap<Route, RetryPolicy>();
  readonly #random: () => number;

  /** The plugin's own hooks for `proxy` (`onRetry`, `onGiveUp`). */
  static getHooks(proxy: Proxy): RetryHooks {
    return hooksFor(proxy);
  }

  constructor(options: RetryOptions = {}, internals: { random?: () => number; now?: () => number } = {}) {
    this.#opts = resolveOptions(options);
    this.#random = internals.random ?? Math.random;
    this.#now = internals.now ?? Date.now;
    this.#budget = this.#makeBudget();
  }

  readonly #now: () => number;

  /** the keys of `route.options` it reads: `retry` (a policy or false) and `idempotent` */
  readonly routeOptions = ["retry", "idempotent"] as const;

  /** Throws `ConfigError` when a route's `retry` or `idempotent` option is invalid (checked before the route is used). */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    resolveRoutePolicy(options.retry, this.#opts, where);
    if (options.idempotent !== undefined && typeof options.idempotent !== "boolean") {
      throw new ConfigError(`${where}.idempotent: must be true or false`);
    }
  }

  #makeBudget(): RetryBudget | undefined {
    return this.#opts.budget === false ? undefined : new RetryBudget(this.#opts.budget, this.#now);
  }

  /** Takes new options on a config reload; the budget window starts afresh when its settings change. */
  reconfigure(options: unknown): void {
    const before = JSON.stringify(this.#opts.budget);
    this.#opts = resolveOptions((options ?? {}) as RetryOptions);
    this.#routeCache = new WeakMap();
    if (JSON.stringify(this.#opts.budget) !== before) this.#budget = this.#makeBudget();
  }

  /** The live budget (for diagnostics), undefined when disabled. */
  get budget(): RetryBudget | undefined {
    return this.#budget;
  }

  apply(proxy: Proxy): void {
    const hooks = hooksFor(proxy);
    // a sync tap: with sync taps only, the protocol runs onRequest without a promise. A body
    // to buffer is started here and awaited by the protocol before the request goes upstream.
    proxy.hooks.onRequest.tap({ name: PLUGIN_NAME, stage: Stage.DECIDE }, (req) => {
      this.#prepare(req);
      return req;
    });
    proxy.hooks.onUpstreamResponse.tap({ name: PLUGIN_NAME, stage: Stage.DECIDE }, (res, req) => {
      this.#decide(res, req, hooks);
      return res;
    });
  }

  #policy(route: Route | undefined): RetryPolicy {
    if (!route) return this.#opts;
    let p = this.#routeCache.get(route);
    if (!p) {
      p = resolveRoutePolicy(route.options?.retry, this.#opts, `route "${route.name}": options`);
      this.#routeCache.set(route, p);
    }
    return p;
  }

  /**
   * Decides replayability and starts buffering a small body of an idempotent request
   * (`bufferBody` without waiting: the HTTP protocol waits for a buffering in progress).
   */
  #prepare(req: ProxyRequest): void {
    if (req.response !== undefined || !isHttpRequest(req)) return;
    const policy = this.#policy(req.route);
    const idempotent = IDEMPOTENT_METHODS.has(req.method.toUpperCase()) || req.route?.options?.idempotent === true;
    const meta: RetryMeta = { idempotent, retries: 0 };
    req.meta[PLUGIN_NAME] = meta;
    if (!idempotent || policy.retries === 0 || req.replayable || req.body === null) return;
    if (req.bodyLength !== undefined && req.bodyLength > policy.bufferLimit) return;
    void req.bufferBody(policy.bufferLimit);
  }

  #decide(res: UpstreamResponse, req: ProxyRequest | undefined, hooks: RetryHooks): void {
    if (res.attempt === 1) this.#budget?.recordRequest();
    if (res.retry !== undefined) return; // an earlier tap decided
    if (res.error === undefined && !isHttpResponse(res)) return;
    if (isHttpResponse(res) && res.error === undefined && (res.status === undefined || res.status < 429)) return; // fast path: success
    const policy = this.#policy(routeOf(res, req));
    const outcome = this.#outcome(res, req);
    const decision = decide(outcome, policy, this.#random, this.#now());
    if (!decision.retry) {
      const condition = classify(outcome);
      if (condition !== undefined && res.retryable && policy.retries > 0 && res.attempt > policy.retries && hooks.onGiveUp.isUsed()) {
        hooks.onGiveUp.call({ protocol: res.protocol, attempt: res.attempt, condition, why: "exhausted", target: res.target, request: req });
      }
      return;
    }
    if (this.#budget && !this.#budget.tryAcquire()) {
      if (hooks.onGiveUp.isUsed()) {
        hooks.onGiveUp.call({ protocol: res.protocol, attempt: res.attempt, condition: decision.condition, why: "budget", target: res.target, request: req });
      }
      return;
    }
    res.retry = { delayMs: decision.delayMs, reason: decision.reason, otherTarget: true };
    const meta = req?.meta[PLUGIN_NAME] as RetryMeta | undefined;
    if (meta) meta.retries++;
    if (hooks.onRetry.isUsed()) {
      hooks.onRetry.call({
        protocol: res.protocol,
        attempt: res.attempt,
        condition: decision.condition,
        reason: decision.reason,
        delayMs: decision.delayMs,
        target: res.target,
        status: isHttpResponse(res) ? res.status : undefined,
        request: req,
      });
    }
  }

  #outcome(res: UpstreamResponse, req: ProxyRequest | undefined): AttemptOutcome {
    const http = isHttpResponse(res) ? res : undefined;
    const err = res.error as (Error & { code?: string; phase?: string }) | undefined;
    const meta = req?.meta[PLUGIN_NAME] as RetryMeta | undefined;
    const replayable = req !== undefined && isHttpRequest(req) ? req.replayable : false;
    return {
      protocol: res.protocol,
      attempt: res.attempt,
      retryable: res.retryable,
      requestSent: res.requestSent,
      errorCode: err?.code,
      errorPhase: err?.phase,
      status: err === undefined ? http?.status : undefined,
      retryAfter: http && err === undefined ? getHeader(http.headers, "retry-after") : undefined,
      safeToResend: (meta?.idempotent ?? false) && replayable,
      reusedSocket: reusedSocket(res),
    };
  }
}

/**
 * The route of an attempt: from the request, or from the response when core provides it there
 * (L4 protocols call `onUpstreamResponse` without a request).
 */
function routeOf(res: UpstreamResponse, req: ProxyRequest | undefined): Route | undefined {
  return req?.route ?? (res as UpstreamResponse & { route?: Route }).route;
}

/**
 * Whether the failed attempt ran on a reused keep-alive socket: protocol-http sets
 * `reusedSocket` on every HttpUpstreamResponse (answers and errors); an error may carry it too.
 */
function reusedSocket(res: UpstreamResponse): boolean {
  const r = res as UpstreamResponse & { reusedSocket?: unknown };
  if (r.reusedSocket === true) return true;
  const e = res.error as { reusedSocket?: unknown } | undefined;
  return e?.reusedSocket === true;
}
