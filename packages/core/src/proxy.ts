import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { EventEmitter } from "eventemitter3";
import { Connection, kConnection, type OwnedSocket } from "./connection.js";
import { dial } from "./dialer.js";
import { ConfigError, PluginError, ProxyError, ResolveError, RouteNotFoundError, UpstreamConnectError } from "./errors.js";
import type { ProxyEvents } from "./events.js";
import { buildHooks, type CloseInfo, type ProxyHooks } from "./hooks.js";
import { IdleSweeper } from "./idle.js";
import type { ProxyRequest, UpstreamResponse } from "./messages.js";
import { createJsonLogger, type Logger, type ProtocolHandler, type ProxyPlugin } from "./plugin.js";
import { IpMatcher } from "./routing/cidr.js";
import { CachedResolver } from "./routing/resolver-cache.js";
import type { ResolveContext, Resolver, ResolverAnswer, Route, RouteMatchResult } from "./routing/route.js";
import { formatTarget } from "./routing/target.js";
import { RouteTable, routeFromAnswer } from "./routing/route-table.js";
import { Stage } from "./stage.js";
import { StatsCollector, type ProxyStats } from "./stats.js";
import { CertificateStore, upgradeToTls } from "./tls.js";
import { TcpProtocol } from "./tcp-protocol.js";
import {
  DEFAULT_TIMEOUTS,
  type ListenerConfig,
  type RouteConfig,
  type RouteKey,
  type SsrfOptions,
  type Target,
  type Timeouts,
} from "./types.js";

export interface ProxyOptions {
  listeners: ListenerConfig[];
  /** the static route table (the default resolver) */
  routes?: RouteConfig[];
  plugins?: ProxyPlugin[];
  /** a dynamic resolver asked before the route table; its targets pass the SSRF guard */
  resolver?: Resolver;
  /** cache resolver answers per key (ms); 0 disables (default 0) */
  resolverCacheTtl?: number;
  timeouts?: Partial<Timeouts>;
  ssrf?: SsrfOptions;
  logger?: Logger;
}

export interface ListenerAddress {
  name: string;
  protocol: string;
  host: string;
  port: number;
}

export interface CloseOptions {
  /** how long established connections may finish before they are destroyed (default 10 s) */
  timeout?: number;
}

/** Most attempts the core makes for one upstream connect, whatever taps ask. */
const MAX_CONNECT_ATTEMPTS = 10;

interface ListenerRuntime {
  config: Readonly<ListenerConfig>;
  server: Server;
  certs: CertificateStore | undefined;
  timeouts: Timeouts;
  active: number;
}

/**
 * A multi-protocol reverse proxy: listeners, the plugin registry, hooks and every connection.
 *
 * ```ts
 * const proxy = new Proxy({
 *   listeners: [{ name: "db", protocol: "tcp", port: 6432 }],
 *   routes: [{ listener: "db", targets: ["10.0.0.5:5432"] }],
 * });
 * await proxy.listen();
 * ```
 */
export class Proxy {
  /** extension points; see hooks.ts for what each tap may do */
  readonly hooks: ProxyHooks = buildHooks();
  /** report-only events: connection open/close, upstream errors, listening */
  readonly events = new EventEmitter<ProxyEvents>();
  readonly logger: Logger;
  readonly timeouts: Timeouts;

  readonly #listeners = new Map<string, ListenerRuntime>();
  readonly #protocols = new Map<string, ProtocolHandler>();
  readonly #connections = new Set<Connection>();
  /** @internal idle timeouts of relayed connections, one sweep for all (idle.ts) */
  readonly idleSweeper = new IdleSweeper(this.#connections);
  readonly #stats = new StatsCollector();
  readonly #plugins: ProxyPlugin[];
  readonly #ssrfAllow: IpMatcher | undefined;
  readonly #ssrfDisabled: boolean;
  #routes: RouteTable;
  #closing = false;
  #listening = false;

  constructor(options: ProxyOptions) {
    if (!options || !Array.isArray(options.listeners)) throw new ConfigError("listeners: must be an array");
    this.logger = options.logger ?? createJsonLogger();
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#routes = new RouteTable(options.routes ?? []);
    this.#ssrfAllow = options.ssrf?.allow?.length ? new IpMatcher(options.ssrf.allow) : undefined;
    this.#ssrfDisabled = options.ssrf?.disabled === true;
    const names = new Set<string>();
    for (const l of options.listeners) {
      if (names.has(l.name)) throw new ConfigError(`listeners: duplicate name "${l.name}"`);
      names.add(l.name);
      this.#listeners.set(l.name, {
        config: Object.freeze({ ...l }),
        server: undefined as unknown as Server,
        certs: l.tls ? new CertificateStore(l.tls) : undefined,
        timeouts: { ...this.timeouts, ...l.timeouts },
        active: 0,
      });
    }
    this.registerProtocol(new TcpProtocol());
    if (options.resolver) this.#tapResolver(options.resolver, options.resolverCacheTtl ?? 0);
    this.hooks.onResolve.tap({ name: "RouteTable", stage: Stage.DEFAULT_ROUTES }, ({ key }) => this.#routes.match(key));
    this.#plugins = [...(options.plugins ?? [])];
    for (const plugin of this.#plugins) {
      try {
        plugin.apply(this);
      } catch (err) {
        throw new PluginError("apply", plugin.name, err);
      }
    }
  }

  /** Plugins in the order they were applied. */
  get plugins(): readonly ProxyPlugin[] {
    return this.#plugins;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Makes a protocol available to listeners that name it. */
  registerProtocol(handler: ProtocolHandler): void {
    this.#protocols.set(handler.name, handler);
  }

  /** Replaces the route table; established connections keep the route they have. */
  setRoutes(routes: RouteConfig[]): void {
    this.#routes = new RouteTable(routes);
  }

  get routes(): RouteTable {
    return this.#routes;
  }

  /** Binds every listener; resolves once all are bound (none stays bound on failure). */
  async listen(): Promise<void> {
    if (this.#listening) return;
    for (const l of this.#listeners.values()) {
      if (!this.#protocols.has(l.config.protocol)) {
        throw new ConfigError(
          `listener "${l.config.name}": no protocol "${l.config.protocol}" is registered (add its plugin, e.g. new HttpProtocol())`,
        );
      }
    }
    const bound: Server[] = [];
    try {
      for (const l of this.#listeners.values()) {
        const server = createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (socket) =>
          this.#accept(l, socket),
        );
        server.on("error", (err) => this.logger.error("listener error", { listener: l.config.name, error: err.message }));
        l.server = server;
        server.listen(l.config.port, l.config.host ?? "0.0.0.0");
        await Promise.race([once(server, "listening"), once(server, "error").then(([e]) => Promise.reject(e))]);
        bound.push(server);
        this.events.emit("listening", this.#addressOf(l));
      }
    } catch (err) {
      for (const s of bound) s.close();
      throw err;
    }
    this.#listening = true;
  }

  /** Bound addresses with their real ports. */
  addresses(): ListenerAddress[] {
    return [...this.#listeners.values()].filter((l) => l.server?.listening).map((l) => this.#addressOf(l));
  }

  /** Address of one listener by name. */
  address(name: string): ListenerAddress {
    const l = this.#listeners.get(name);
    if (!l?.server?.listening) throw new ConfigError(`listener "${name}" is not listening`);
    return this.#addressOf(l);
  }

  #addressOf(l: ListenerRuntime): ListenerAddress {
    const a = l.server.address() as AddressInfo;
    return { name: l.config.name, protocol: l.config.protocol, host: a.address, port: a.port };
  }

  /**
   * Stops accepting, asks established connections to finish (keep-alive sessions close after
   * their current message), waits until `timeout`, then destroys what is left.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const timeout = options.timeout ?? 10_000;
    this.#closing = true;
    const closed = [...this.#listeners.values()]
      .filter((l) => l.server?.listening)
      .map((l) => new Promise<void>((r) => l.server.close(() => r())));
    for (const c of this.#connections) c.drain();
    if (this.#connections.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, timeout);
        const check = () => {
          if (this.#connections.size === 0) finish();
        };
        function finish() {
          clearTimeout(timer);
          resolve();
        }
        this.#onEmpty = check;
      });
      this.#onEmpty = undefined;
      for (const c of [...this.#connections]) c.destroy("shutdown");
    }
    await Promise.all(closed);
    this.#listening = false;
  }

  #onEmpty: (() => void) | undefined;

  /** Live counters: active connections per listener and route, totals, bytes. */
  stats(): ProxyStats {
    return this.#stats.snapshot();
  }

  /** Connections currently open (for diagnostics). */
  get connections(): ReadonlySet<Connection> {
    return this.#connections;
  }

  #accept(l: ListenerRuntime, socket: Socket): void {
    const conn = new Connection(this, l.config, socket);
    // shared handlers (no closures per connection): they find the connection on the socket
    (socket as AcceptedSocket)[kConnection] = conn;
    socket.on("error", onClientError);
    socket.on("close", onClientClose);
    this.#connections.add(conn);
    this.#stats.opened(l.config.name);
    l.active++;
    if (this.events.listenerCount("connectionOpen") > 0) this.events.emit("connectionOpen", conn.info);
    if (this.#closing) return conn.destroy("shutdown");
    if (l.config.maxConnections !== undefined && l.active > l.config.maxConnections) {
      this.logger.warn("connection limit reached", { listener: l.config.name, id: conn.id });
      return conn.destroy("rejected");
    }
    const t = l.timeouts;
    conn.timer("handshake", t.handshake, () => conn.destroy("handshake-timeout"));
    if (t.lifetime > 0) conn.timer("lifetime", t.lifetime, () => conn.destroy("lifetime-timeout"));
    void this.#start(l, conn);
  }

  async #start(l: ListenerRuntime, conn: Connection): Promise<void> {
    try {
      if (this.hooks.onAccept.isUsed()) {
        const rejection = await this.hooks.onAccept.promise(conn);
        if (conn.destroyed) return;
        if (rejection) {
          this.logger.info("connection rejected", { id: conn.id, reason: rejection.reason });
          return conn.destroy("rejected");
        }
      }
      const protocol = this.#protocols.get(l.config.protocol)!;
      conn.setState("handshaking");
      if (l.certs && (protocol.tlsMode ?? "accept") === "accept") {
        await upgradeToTls(conn, l.certs, { timeoutMs: l.timeouts.handshake });
      }
      if (conn.destroyed) return;
      await protocol.handle(conn);
    } catch (err) {
      this.failConnection(conn, err);
    }
  }

  /** Ends a connection after an unexpected failure, logging it with the right reason. */
  failConnection(conn: Connection, err: unknown): void {
    if (conn.destroyed) return;
    if (err instanceof PluginError) {
      this.logger.error("plugin failed", { id: conn.id, hook: err.hook, plugin: err.plugin, error: err.message });
      this.events.emit("pluginError", err);
      return conn.destroy("plugin-error", err);
    }
    this.logger.warn("connection failed", { id: conn.id, error: (err as Error)?.message ?? String(err) });
    conn.destroy("protocol-error", err);
  }

  /** Timeouts in force for a connection's listener. */
  timeoutsFor(conn: Connection): Timeouts {
    return this.#listeners.get(conn.listener.name)?.timeouts ?? this.timeouts;
  }

  /** Certificate store of a listener with `tls` (for protocols that upgrade in-protocol). */
  certificatesFor(conn: Connection): CertificateStore | undefined {
    return this.#listeners.get(conn.listener.name)?.certs;
  }

  /**
   * Finds where a routing key goes: runs `onResolve` (custom resolvers first, the route table
   * last). Throws `ResolveError` (RouteNotFoundError when nothing answers).
   */
  async resolve(conn: Connection, key: RouteKey): Promise<RouteMatchResult> {
    conn.setState("routing");
    const match = await this.hooks.onResolve.promise({ key, connection: conn });
    if (!match) throw new RouteNotFoundError(`no route for ${describeKey(key)}`);
    if (conn.route === undefined) this.#stats.routed(match.route.name);
    conn.route = match.route;
    return match;
  }

  /**
   * The same answer as `resolve`, computed synchronously when only the route table answers
   * `onResolve` (no resolver, no plugin taps): saves the promise hops on the accept path.
   * Returns undefined when taps must run; use `resolve` then. Throws RouteNotFoundError.
   */
  tryResolveSync(conn: Connection, key: RouteKey): RouteMatchResult | undefined {
    if (this.hooks.onResolve.taps.length !== 1) return undefined;
    conn.setState("routing");
    const match = this.#routes.match(key);
    if (!match) throw new RouteNotFoundError(`no route for ${describeKey(key)}`);
    if (conn.route === undefined) this.#stats.routed(match.route.name);
    conn.route = match.route;
    return match;
  }

  /**
   * Dials a target for a connection: connect timeout from its listener, aborted with the
   * connection, SSRF guard when the route is dynamic.
   */
  dial(conn: Connection, target: Target, dynamic: boolean, options: { allowHalfOpen?: boolean } = {}): Promise<Socket> {
    const guard = dynamic && !this.#ssrfDisabled ? { allow: this.#ssrfAllow } : false;
    return dial(target, {
      timeoutMs: this.timeoutsFor(conn).connect,
      guard,
      allowHalfOpen: options.allowHalfOpen,
      // the connection owns the socket from the start: destroying the connection ends the dial
      onSocket: (socket) => {
        if (conn.destroyed) socket.destroy();
        else conn.upstream = socket;
      },
    });
  }

  /**
   * Picks a target of the route and connects, asking `onUpstreamResponse` taps (plugin-retry)
   * whether to try again after a connect failure. Used by L4 protocols; HTTP has its own pool.
   */
  async connectUpstream(
    conn: Connection,
    match: RouteMatchResult,
    request?: ProxyRequest,
  ): Promise<{ socket: Socket; target: Target }> {
    const route = match.route;
    const tried = new Set<Target>();
    conn.setState("connecting");
    for (let attempt = 1; ; attempt++) {
      const target = request?.target ?? route.balancer.pick(tried) ?? route.balancer.pick();
      if (!target) throw new UpstreamConnectError(`route ${route.name} has no target`);
      conn.target = target;
      try {
        // a byte relay keeps each direction open until its own FIN (half-close both ways)
        const socket = await this.dial(conn, target, route.dynamic, { allowHalfOpen: true });
        if (conn.destroyed) {
          socket.destroy();
          throw new UpstreamConnectError("client went away during connect");
        }
        conn.lease(route, target);
        return { socket, target };
      } catch (err) {
        if (conn.destroyed) throw err;
        const error = err instanceof ProxyError ? err : new UpstreamConnectError(String(err), { cause: err });
        this.events.emit("upstreamError", { connection: conn.info, target, error });
        if (!this.hooks.onUpstreamResponse.isUsed() || attempt >= MAX_CONNECT_ATTEMPTS) throw error;
        const res: UpstreamResponse = {
          protocol: conn.listener.protocol,
          attempt,
          target,
          route,
          error,
          retryable: true,
          requestSent: false,
          retry: undefined,
        };
        const out = await this.hooks.onUpstreamResponse.promise(res, request);
        if (!out.retry || conn.destroyed) throw error;
        if (out.retry.otherTarget !== false) tried.add(target);
        await sleep(out.retry.delayMs, conn.signal);
        if (conn.destroyed) throw error;
      }
    }
  }

  #tapResolver(resolver: Resolver, ttl: number): void {
    const r = ttl > 0 ? new CachedResolver(resolver, { ttlMs: ttl }) : resolver;
    this.hooks.onResolve.tapPromise({ name: "Resolver", stage: Stage.ROUTE }, async ({ key, connection }) => {
      const ctx: ResolveContext = { connectionId: connection.id, signal: connection.signal };
      let answer;
      try {
        answer = await r.resolve(key, ctx);
      } catch (err) {
        if (err instanceof ResolveError) throw err;
        throw new ResolveError("INTERNAL", `resolver failed: ${(err as Error)?.message ?? err}`, { cause: err });
      }
      return { route: this.#dynamicRoute(answer, `resolver:${describeKey(key)}`), params: {} };
    });
  }

  readonly #dynamicRoutes = new Map<string, Route>();

  /**
   * Keeps one Route per resolver answer (by key and targets) so its balancer state (round-robin
   * position, least-connections counts) survives across lookups. Bounded; oldest dropped first.
   */
  #dynamicRoute(answer: ResolverAnswer, name: string): Route {
    const fresh = routeFromAnswer(answer, name);
    const id = `${name}|${fresh.lb}|${fresh.targets.map(formatTarget).join(",")}`;
    const known = this.#dynamicRoutes.get(id);
    if (known) return known;
    if (this.#dynamicRoutes.size >= 10_000) {
      const oldest = this.#dynamicRoutes.keys().next().value;
      if (oldest !== undefined) this.#dynamicRoutes.delete(oldest);
    }
    this.#dynamicRoutes.set(id, fresh);
    return fresh;
  }

  /** @internal called once by Connection.destroy */
  connectionClosed(conn: Connection, info: CloseInfo): void {
    if (!this.#connections.delete(conn)) return;
    const l = this.#listeners.get(conn.listener.name);
    if (l) l.active--;
    this.#stats.closed(conn.listener.name, conn.route?.name, info);
    try {
      if (this.hooks.onClose.isUsed()) this.hooks.onClose.call(conn, info);
    } catch (err) {
      this.logger.error("onClose tap failed", { id: conn.id, error: (err as Error).message });
    }
    this.events.emit("connectionClose", conn.info, info);
    if (this.#connections.size === 0) this.#onEmpty?.();
  }
}

function describeKey(key: RouteKey): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(key)) if (v !== undefined && k !== "clientIp") parts.push(`${k}=${v}`);
  return parts.join(" ");
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

type AcceptedSocket = OwnedSocket;

function onClientError(this: AcceptedSocket, err: Error): void {
  this[kConnection].destroy("client-error", err);
}

function onClientClose(this: AcceptedSocket): void {
  this[kConnection].clientClosed();
}
