/**
 * `HttpProtocol`: the plugin that registers the "http" protocol with a proxy and serves each
 * accepted connection of listeners that name it.
 */
import type { Connection, ProtocolContext, ProtocolHandler, Proxy, ProxyPlugin, Refusal } from "@switchyard/core";
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
  /** by the proxy served (one instance may serve several proxies; each closes its own) */
  readonly #runtimes = new WeakMap<ProtocolContext, ProtocolRuntime>();
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

  #runtime(context: ProtocolContext): ProtocolRuntime {
    let r = this.#runtimes.get(context);
    if (r === undefined) {
      r = new ProtocolRuntime(context, this.#defaults);
      this.#runtimes.set(context, r);
      this.#all.add(r);
    }
    return r;
  }

  handle(conn: Connection): void {
    const runtime = this.#runtime(conn.context);
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
  poolStats(proxy: ProtocolContext): Array<{ target: string; open: number; idle: number; queued: number }> {
    const r = this.#runtimes.get(proxy);
    if (r === undefined) return [];
    return [...r.pools.pools()].map((p) => ({
      target: `${p.target.host}:${p.target.port}`,
      open: p.open,
      idle: p.idleCount,
      queued: p.queued,
    }));
  }

  /**
   * Closes the upstream pools of the proxy that closes (`Proxy.close()` calls this with its
   * context): idle sockets now, busy ones when their exchange ends. Other proxies this instance
   * serves keep theirs; a proxy that closed and serves again gets new pools. Without a
   * context (an owner done with the instance), every proxy's pools close.
   */
  close(context?: ProtocolContext): void {
    if (context === undefined) {
      for (const r of this.#all) r.close();
      this.#all.clear();
      return;
    }
    const r = this.#runtimes.get(context);
    if (r === undefined) return;
    this.#runtimes.delete(context);
    this.#all.delete(r);
    r.close();
  }
}
