import type { Proxy } from "@switchyard/core";
import { waitFor } from "./wait.js";

/** Waits until the proxy reports no active connection (fails with the stats otherwise). */
export async function expectNoActiveConnections(proxy: Proxy, timeoutMs = 3000): Promise<void> {
  try {
    await waitFor(() => proxy.stats().active === 0 && proxy.connections.size === 0, timeoutMs, "active connections to reach 0");
  } catch {
    throw new Error(`active connections did not return to zero: ${JSON.stringify(proxy.stats())}`);
  }
}

/**
 * Names of handles still alive in this process (sockets, servers, timers) beyond a baseline
 * taken with `resourceBaseline()`; used to assert nothing is left listening or scheduled.
 */
export function resourceBaseline(): Map<string, number> {
  return countResources();
}

export function leakedResources(baseline: Map<string, number>, allowTimers = 0): string[] {
  const now = countResources();
  if (allowTimers > 0) now.set("Timeout", Math.max(0, (now.get("Timeout") ?? 0) - allowTimers));
  const out: string[] = [];
  for (const [k, n] of now) {
    const before = baseline.get(k) ?? 0;
    if (n > before) out.push(`${k} x${n - before}`);
  }
  return out;
}

function countResources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) {
    if (r === "TTYWrap" || r === "FSReqCallback" || r === "CloseReq") continue;
    m.set(r, (m.get(r) ?? 0) + 1);
  }
  return m;
}

/**
 * Waits until nothing beyond the baseline remains. Call it from an async mocha hook with the
 * baseline taken in a synchronous `beforeEach`: mocha arms one timer of its own for the async
 * hook that is running, which `allowTimers` (default 1) accounts for.
 */
export async function expectNoLeakedResources(baseline: Map<string, number>, timeoutMs = 3000, allowTimers = 1): Promise<void> {
  try {
    await waitFor(() => leakedResources(baseline, allowTimers).length === 0, timeoutMs, "resources to be released");
  } catch {
    const detail = process.env.SWITCHYARD_LEAK_DEBUG ? describeTimers() + describeLiveTimers().join("\n") : "";
    throw new Error(`resources left open: ${leakedResources(baseline, allowTimers).join(", ")}${detail}`);
  }
}

function describeTimers(): string {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles
    .map((h) => {
      const t = h as { _idleTimeout?: number; _onTimeout?: () => void; constructor: { name: string } };
      return t.constructor.name === "Timeout"
        ? ` [timer ${t._idleTimeout}ms ${String(t._onTimeout).slice(0, 300)}]`
        : ` [${t.constructor.name}]`;
    })
    .join("");
}

const liveTimers = new Map<number, string>();
if (process.env.SWITCHYARD_LEAK_DEBUG) {
  const { createHook } = await import("node:async_hooks");
  createHook({
    init(id, type) {
      if (type === "Timeout") liveTimers.set(id, (new Error().stack ?? "").split("\n").slice(3, 9).join(" | "));
    },
    destroy(id) {
      liveTimers.delete(id);
    },
  }).enable();
}
export function describeLiveTimers(): string[] {
  return [...liveTimers.values()];
}
