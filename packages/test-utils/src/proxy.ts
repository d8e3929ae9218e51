import { Proxy, silentLogger, type ProxyOptions } from "@switchyard/core";

export interface StartedProxy {
  proxy: Proxy;
  /** port of a listener by name (the first listener when omitted) */
  port(name?: string): number;
}

/** Builds a Proxy with a silent logger, binds 127.0.0.1:0 listeners by default, and listens. */
export async function startProxy(options: ProxyOptions): Promise<StartedProxy> {
  const proxy = new Proxy({
    logger: silentLogger,
    ...options,
    listeners: options.listeners.map((l) => ({ host: "127.0.0.1", ...l })),
  });
  await proxy.listen();
  return {
    proxy,
    port(name) {
      const n = name ?? options.listeners[0]!.name;
      return proxy.address(n).port;
    },
  };
}
