import type { ProxyPlugin } from "@switchyard/core";

/**
 * A plugin whose onResolve tap (early stage, answers nothing) waits until `release()`: holds
 * every connection in routing, for tests of what happens while routing has not answered.
 */
export function gatedResolve(): { plugin: ProxyPlugin; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const plugin: ProxyPlugin = {
    name: "SlowResolve",
    apply(proxy) {
      proxy.hooks.onResolve.tapPromise({ name: "SlowResolve", stage: -500 }, async () => {
        await gate;
        return undefined;
      });
    },
  };
  return { plugin, release };
}
