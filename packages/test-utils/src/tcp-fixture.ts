import type { Socket } from "node:net";
import type { ProxyOptions } from "@switchyard/core";
import { expectNoActiveConnections, expectNoLeakedResources, resourceBaseline } from "./leaks.js";
import { startProxy, type StartedProxy } from "./proxy.js";
import { connectTo, type TestServer } from "./servers.js";

// mocha's hook functions, as globals (the test projects load @types/mocha; this package does not)
type Hook = (fn: () => void | Promise<void>) => void;
declare const beforeEach: Hook;
declare const afterEach: Hook;

export interface TcpFixture {
  /** the proxy of the current test; after it, active connections must reach zero, then it is closed */
  started: StartedProxy | undefined;
  /** starts a proxy (see startProxy) as the current test's proxy */
  start(options: ProxyOptions): Promise<StartedProxy>;
  /** a proxy with one tcp listener "tcp" and one route "r" to `targets` (options override) */
  proxyTo(targets: string[], extra?: Partial<ProxyOptions>): Promise<StartedProxy>;
  /** a backend for the current test, closed after it */
  serve<T extends TestServer>(server: Promise<T>): Promise<T>;
  /** a client socket, destroyed after the test */
  client(port: number, opts?: { allowHalfOpen?: boolean }): Promise<Socket>;
}

/**
 * Registers beforeEach/afterEach hooks for TCP proxy tests in the calling describe block: after
 * every test, clients are destroyed, the proxy must show zero active connections and is closed,
 * the backends are closed, and (with `leakCheck`, the default) no handle or timer may outlive it.
 * `afterProxy` runs extra checks on the proxy before it is closed.
 */
export function useTcpFixture(options: { leakCheck?: boolean; afterProxy?: (p: StartedProxy) => void } = {}): TcpFixture {
  const leakCheck = options.leakCheck ?? true;
  const clients: Socket[] = [];
  const backends: TestServer[] = [];
  let baseline: Map<string, number> | undefined;
  const fx: TcpFixture = {
    started: undefined,
    async start(proxyOptions) {
      fx.started = await startProxy(proxyOptions);
      return fx.started;
    },
    proxyTo(targets, extra = {}) {
      return fx.start({
        listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
        routes: [{ name: "r", listener: "tcp", targets }],
        ...extra,
      });
    },
    async serve(server) {
      const s = await server;
      backends.push(s);
      return s;
    },
    async client(port, opts = {}) {
      const s = await connectTo(port, "127.0.0.1", opts);
      clients.push(s);
      return s;
    },
  };
  beforeEach(() => {
    if (leakCheck) baseline = resourceBaseline();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    const started = fx.started;
    fx.started = undefined;
    if (started) {
      await expectNoActiveConnections(started.proxy)
        .then(() => options.afterProxy?.(started))
        .finally(() => started.proxy.close({ timeout: 100 }));
    }
    for (const b of backends.splice(0)) await b.close();
    if (baseline) await expectNoLeakedResources(baseline);
  });
  return fx;
}
