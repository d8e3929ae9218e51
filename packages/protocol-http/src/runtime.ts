/**
 * What the HTTP protocol keeps per proxy: upstream pools, resolved listener options, and the
 * synchronous route lookup used when only the built-in route table answers `onResolve`.
 */
import type { Connection, Proxy, RouteKey, RouteMatchResult } from "@switchyard/core";
import { resolveListenerOptions, type HttpListenerOptions, type ResolvedListenerOptions } from "./options.js";
import { PoolSet } from "./pool.js";

interface TapInfo {
  name: string;
}

export class ProtocolRuntime {
  readonly proxy: Proxy;
  readonly pools = new PoolSet();
  readonly #defaults: HttpListenerOptions;
  readonly #listeners = new Map<string, ResolvedListenerOptions>();

  constructor(proxy: Proxy, defaults: HttpListenerOptions) {
    this.proxy = proxy;
    this.#defaults = defaults;
  }

  optionsFor(conn: Connection): ResolvedListenerOptions {
    const name = conn.listener.name;
    let o = this.#listeners.get(name);
    if (o === undefined) {
      o = resolveListenerOptions(
        `listener "${name}"`,
        this.#defaults,
        conn.listener.options,
        this.proxy.timeoutsFor(conn).connect,
      );
      this.#listeners.set(name, o);
    }
    return o;
  }

  /**
   * The route for `key` without a promise when the route table is the only `onResolve` tap
   * and the connection already went through `proxy.resolve` once (which counts route stats).
   * `null` means "ask proxy.resolve".
   */
  resolveSync(conn: Connection, key: RouteKey): RouteMatchResult | undefined | null {
    if (conn.route === undefined) return null;
    const taps = (this.proxy.hooks.onResolve as unknown as { taps: TapInfo[] }).taps;
    if (taps.length !== 1 || taps[0]!.name !== "RouteTable") return null;
    const m = this.proxy.routes.match(key);
    if (m !== undefined) conn.route = m.route;
    return m;
  }

  /** A connection closed: once the proxy is shutting down, idle upstream sockets go too. */
  connectionGone(): void {
    if (this.proxy.closing) this.pools.closeIdle();
  }

  close(): void {
    this.pools.close();
  }
}
