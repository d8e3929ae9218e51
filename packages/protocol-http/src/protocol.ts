/**
 * `HttpProtocol`: the plugin that registers the "http" protocol with a proxy and serves each
 * accepted connection of listeners that name it.
 */
import type { Connection, ProtocolHandler, Proxy, ProxyPlugin, Refusal } from "@switchyard/core";
import { checkRouteOptions, resolveListenerOptions, ROUTE_KEYS, type HttpListenerOptions, type ResolvedListenerOptions } from "./options.js";
import { ProtocolRuntime } from "./runtime.js";
import { Session } from "./session.js";

const PLUGIN_NAME = "HttpProtocol";

export class HttpProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "http";
  readonly tlsMode = "accept" as const;
  readonly #defaults: HttpListenerOptions;
  /** the defaults resolved (what a listener without options gets) */
  readonly #resolved: ResolvedListenerOptions;
  /** the keys of `route.options` this protocol reads */
  readonly routeOptions = ROUTE_KEYS;
  readonly #runtimes = new WeakMap<Proxy, ProtocolRuntime>();
  readonly #all = new Set<ProtocolRuntime>();

  /** `options` are the defaults of every listener; `ListenerConfig.options` override them. */
  constructor(options: HttpListenerOptions = {}) {
    // validate early (a config mistake fails at construction, not at the first request)
    this.#resolved = resolveListenerOptions(PLUGIN_NAME, options, undefined, 5000);
    this.#defaults = { ...options };
  }

  /** Unknown or invalid listener options throw `ConfigError` (the proxy calls this before listening). */
  checkListenerOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    resolveListenerOptions(where, this.#defaults, options, 5000);
  }

  /** Invalid HTTP route options throw `ConfigError`; keys of other readers are left to them. */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    checkRouteOptions(options, where, this.#resolved);
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

  /**
   * Core closes a connection on its own account before any request was answered (connection
   * limit, onAccept rejection, shutdown: 503; handshake deadline: 408): say so in HTTP.
   */
  refuse(conn: Connection, refusal: Refusal): Promise<void> {
    const head = refusal.kind === "handshake-timeout" ? "408 Request Timeout" : "503 Service Unavailable";
    return new Promise((resolve) => conn.socket.write(`HTTP/1.1 ${head}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => resolve()));
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
