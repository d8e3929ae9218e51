/**
 * `HttpProtocol`: the plugin that registers the "http" protocol with a proxy and serves each
 * accepted connection of listeners that name it.
 */
import type { Connection, ProtocolHandler, Proxy, ProxyPlugin } from "@switchyard/core";
import { resolveListenerOptions, type HttpListenerOptions } from "./options.js";
import { ProtocolRuntime } from "./runtime.js";
import { Session } from "./session.js";

const PLUGIN_NAME = "HttpProtocol";

export class HttpProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "http";
  readonly tlsMode = "accept" as const;
  readonly #defaults: HttpListenerOptions;
  readonly #runtimes = new WeakMap<Proxy, ProtocolRuntime>();
  readonly #all = new Set<ProtocolRuntime>();

  /** `options` are the defaults of every listener; `ListenerConfig.options` override them. */
  constructor(options: HttpListenerOptions = {}) {
    // validate early (a config mistake fails at construction, not at the first request)
    resolveListenerOptions(PLUGIN_NAME, options, undefined, 5000);
    this.#defaults = { ...options };
  }

  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
    this.#runtime(proxy);
  }

  #runtime(proxy: Proxy): ProtocolRuntime {
    let r = this.#runtimes.get(proxy);
    if (r === undefined) {
      r = new ProtocolRuntime(proxy, this.#defaults);
      this.#runtimes.set(proxy, r);
      this.#all.add(r);
    }
    return r;
  }

  handle(conn: Connection): void {
    const runtime = this.#runtime(conn.proxy);
    const session = new Session(conn, runtime, runtime.optionsFor(conn));
    session.start();
  }

  /** Upstream pool counters of a proxy (for diagnostics and tests). */
  poolStats(proxy: Proxy): Array<{ target: string; open: number; idle: number; queued: number }> {
    const r = this.#runtimes.get(proxy);
    if (r === undefined) return [];
    return [...r.pools.pools()].map((p) => ({
      target: `${p.target.host}:${p.target.port}`,
      open: p.open,
      idle: p.idleCount,
      queued: p.queued,
    }));
  }

  /** Closes every upstream pool (idle sockets now, busy ones when their exchange ends). */
  close(): void {
    for (const r of this.#all) r.close();
    this.#all.clear();
  }
}
