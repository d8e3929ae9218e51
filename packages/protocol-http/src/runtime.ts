/**
 * What the HTTP protocol keeps per proxy: upstream pools, session deadline timers and resolved
 * listener options.
 * (Routing uses core's `proxy.tryResolveSync`, synchronous when only the route table answers.)
 */
import type { Connection, Proxy } from "@switchyard/core";
import { resolveListenerOptions, type HttpListenerOptions, type ResolvedListenerOptions } from "./options.js";
import { DeadlineTimers } from "./internal/deadline.js";
import { PoolSet } from "./pool.js";

export class ProtocolRuntime {
  readonly proxy: Proxy;
  readonly pools = new PoolSet();
  /** every session's deadline, in one timer per duration */
  readonly deadlines = new DeadlineTimers();
  readonly #defaults: HttpListenerOptions;
  // keyed by the listener config object a connection was accepted with: a listener reconfigured
  // or re-added under the same name (switchyard's SIGHUP reload) gets its options resolved anew
  readonly #listeners = new WeakMap<object, ResolvedListenerOptions>();

  constructor(proxy: Proxy, defaults: HttpListenerOptions) {
    this.proxy = proxy;
    this.#defaults = defaults;
  }

  optionsFor(conn: Connection): ResolvedListenerOptions {
    const listener = conn.listener;
    let o = this.#listeners.get(listener);
    if (o === undefined) {
      o = resolveListenerOptions(`listener "${listener.name}"`, this.#defaults, listener.options, this.proxy.timeoutsFor(conn).connect);
      this.#listeners.set(listener, o);
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
