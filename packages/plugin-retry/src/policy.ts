import type { RetryCondition, RetryPolicy } from "./options.js";
import { backoffDelay } from "./backoff.js";
import { retryAfterDelay } from "./retry-after.js";

/** Methods RFC 9110 §9.2.2 calls idempotent. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

/** What the plugin knows about one failed or answered attempt; a plain object so the rules are testable. */
export interface AttemptOutcome {
  /** "http", "tcp", "postgres", ... */
  readonly protocol: string;
  /** 1 for the first attempt */
  readonly attempt: number;
  /** false once anything went downstream */
  readonly retryable: boolean;
  /** request bytes may have reached the upstream */
  readonly requestSent: boolean;
  /** `code` of the upstream error, when there was no answer */
  readonly errorCode?: string | undefined;
  /** `phase` of an UpstreamTimeoutError ("connect", "headers", ...) */
  readonly errorPhase?: string | undefined;
  /** status of a real answer */
  readonly status?: number | undefined;
  /** Retry-After of that answer */
  readonly retryAfter?: string | undefined;
  /** idempotent (method or route) and the body can be sent again */
  readonly safeToResend: boolean;
  /** the failed attempt used a pooled keep-alive socket (a stale-socket reset) */
  readonly reusedSocket?: boolean | undefined;
}

/** What to do about an outcome: retry after `delayMs`, or not, with why. */
export type RetryDecision =
  | { readonly retry: true; readonly condition: RetryCondition; readonly delayMs: number; readonly reason: string }
  | { readonly retry: false; readonly reason: string };

/** The retry condition an outcome falls under, or undefined when it is never retried. */
export function classify(o: AttemptOutcome): RetryCondition | undefined {
  if (o.errorCode !== undefined) {
    switch (o.errorCode) {
      case "PRX_ERR_UPSTREAM_CONNECT":
        return "connect";
      case "PRX_ERR_UPSTREAM_TIMEOUT":
        // requestTimeout is the request's total deadline: retrying past it would defeat it
        if (o.errorPhase === "request") return undefined;
        return o.errorPhase === "connect" ? "connect" : "timeout";
      case "PRX_ERR_UPSTREAM_RESET":
        return "reset";
      default:
        return undefined;
    }
  }
  if (o.status === 429) return "429";
  if (o.status !== undefined && o.status >= 500 && o.status <= 599) return "5xx";
  return undefined;
}

/**
 * The retry rules, in order:
 * 1. nothing may have gone downstream (`retryable`), and attempts must remain;
 * 2. the outcome's condition must be enabled in `on` (statuses also listed in `statuses`);
 * 3. protocols other than HTTP retry connect failures only;
 * 4. a connect failure (nothing sent) is safe for every method; anything after the request may
 *    have been sent needs an idempotent, replayable request.
 * The delay: immediate for the first retry of a stale pooled socket, Retry-After (capped) when
 * the answer carries one, else exponential backoff with full jitter.
 */
export function decide(o: AttemptOutcome, policy: RetryPolicy, random: () => number = Math.random, now: number = Date.now()): RetryDecision {
  if (!o.retryable) return { retry: false, reason: "response already started downstream" };
  if (o.attempt > policy.retries) return { retry: false, reason: "retries exhausted" };
  const condition = classify(o);
  if (condition === undefined) return { retry: false, reason: "not a retryable outcome" };
  if (!policy.on.has(condition)) return { retry: false, reason: `"${condition}" is not in on` };
  if (o.status !== undefined && !policy.statuses.has(o.status)) return { retry: false, reason: `status ${o.status} is not in statuses` };
  if (o.protocol !== "http" && condition !== "connect") return { retry: false, reason: `${o.protocol}: only connect failures are retried` };
  const nothingSent = condition === "connect" || !o.requestSent;
  if (!nothingSent && !o.safeToResend) return { retry: false, reason: "request is not idempotent or its body is not replayable" };

  const what = o.status !== undefined ? `status ${o.status}` : (o.errorCode ?? condition);
  if (o.reusedSocket && condition === "reset" && o.attempt === 1) {
    return { retry: true, condition, delayMs: 0, reason: `${condition}: stale pooled connection, retrying at once` };
  }
  const fromHeader = o.status !== undefined ? retryAfterDelay(o.retryAfter, policy.maxRetryAfter, now) : undefined;
  if (fromHeader !== undefined) return { retry: true, condition, delayMs: fromHeader, reason: `${condition}: ${what}, Retry-After` };
  return { retry: true, condition, delayMs: backoffDelay(o.attempt - 1, policy.backoff, random), reason: `${condition}: ${what}` };
}
