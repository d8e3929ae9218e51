import { SyncHook } from "tapable";
import type { ProxyRequest, Target } from "@switchyard/core";
import type { RetryCondition } from "./options.js";

/** Reported when the plugin asks for another attempt. */
export interface RetryEvent {
  readonly protocol: string;
  /** the attempt that failed (1 for the first) */
  readonly attempt: number;
  /** what triggered the retry */
  readonly condition: RetryCondition;
  readonly reason: string;
  readonly delayMs: number;
  /** the target of the failed attempt */
  readonly target: Target | undefined;
  /** the status of the failed attempt, when it was an answer */
  readonly status: number | undefined;
  readonly request: ProxyRequest | undefined;
}

/** Reported when a retryable failure is not retried because attempts or the budget ran out. */
export interface GiveUpEvent {
  readonly protocol: string;
  readonly attempt: number;
  readonly condition: RetryCondition;
  readonly why: "exhausted" | "budget";
  readonly target: Target | undefined;
  readonly request: ProxyRequest | undefined;
}

function createRetryHooks() {
  return Object.freeze({
    /** Fires each time a retry is scheduled. Observe only (`tap`). */
    onRetry: new SyncHook<[RetryEvent]>(["event"], "onRetry"),
    /** Fires when a failure that could be retried is relayed instead (attempts or budget spent). */
    onGiveUp: new SyncHook<[GiveUpEvent]>(["event"], "onGiveUp"),
  });
}

export type RetryHooks = ReturnType<typeof createRetryHooks>;

const byProxy = new WeakMap<object, RetryHooks>();

/** The hooks of one proxy, created on first use (the webpack `getCompilationHooks` pattern). */
export function hooksFor(proxy: object): RetryHooks {
  let hooks = byProxy.get(proxy);
  if (!hooks) {
    hooks = createRetryHooks();
    byProxy.set(proxy, hooks);
  }
  return hooks;
}
