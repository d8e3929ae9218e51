/**
 * What the HTTP protocol keeps per proxy: upstream pools and resolved listener options.
 * (Routing uses core's `proxy.tryResolveSync`, synchronous when only the route table answers.)
 */
import type { Connection, Proxy } from "@switchyard/core";
import { resolveListenerOptions, type HttpListenerOptions, type ResolvedListenerOptions } from "./options.js";
import { PoolSet } from "./pool.js";

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

  /** A connection closed: once the proxy is shutting down, idle upstream sockets go too. */
  connectionGone(): void {
    if (this.proxy.closing) this.pools.closeIdle();
  }

  close(): void {
    this.pools.close();
  }
}
