export { RetryPlugin, type RetryMeta } from "./retry-plugin.js";
export type { RetryOptions, RouteRetryOptions, RetryCondition } from "./options.js";
export { RETRY_CONDITIONS, DEFAULTS } from "./options.js";
export { backoffCeiling, backoffDelay, type BackoffOptions } from "./backoff.js";
export { parseRetryAfter, retryAfterDelay } from "./retry-after.js";
export { RetryBudget, type BudgetOptions } from "./budget.js";
export { classify, decide, IDEMPOTENT_METHODS, type AttemptOutcome, type RetryDecision } from "./policy.js";
export type { RetryHooks, RetryEvent, GiveUpEvent } from "./hooks.js";

import { RetryPlugin } from "./retry-plugin.js";
export default RetryPlugin;
