import type { AddressInfo, Socket } from "node:net";
import { Connection, ConnectionTimer, kConnection, type OwnedSocket } from "./connection.js";
import { dial, type DialOptions } from "./dialer.js";
import {
  ConfigError,
  ConnectionRejectedError,
  PluginError,
  RouteNotFoundError,
  ShuttingDownError,
  UpstreamTimeoutError,
  type ProxyError,
} from "./errors.js";
import { Refusals } from "./internal/refusal.js";
import { MatchKeys, type MatchKeyKind } from "./routing/match-keys.js";
import { ReportEmitter } from "./events.js";
import { buildHooks, type ProxyHooks } from "./hooks.js";
import type { CloseInfo, CloseReason, ListenerAddress, RouteKey } from "./vocabulary.js";
import type { ProtocolContext } from "./protocol-context.js";
import { IdleSweeper } from "./internal/idle.js";
import type { ProxyRequest } from "./messages.js";
import { OptionsChecker } from "./options-check.js";
import { createJsonLogger, type Logger, type ProtocolHandler, type ProxyPlugin, type RefusalKind } from "./plugin.js";
import { IpMatcher } from "./routing/cidr.js";
import type { Resolver, Route, RouteMatchResult } from "./routing/route.js";
import { RouteTable } from "./routing/route-table.js";
import { Stage } from "./stage.js";
import { StatsCollector, type ProxyStats } from "./stats.js";
import { CertificateStore, tlsHandshakeInProgress, upgradeToTls } from "./tls.js";
import { identityKeyFields } from "./client-identity.js";
import {
  applyListenerChanges,
  bindListener,
  listenerRuntime,
  unbindListener,
  type ListenerChanges,
  type ListenerRuntime,
} from "./listeners.js";
import { TcpProtocol } from "./tcp-protocol.js";
import { connectWithRetries, type ConnectUpstreamOptions } from "./internal/upstream-connect.js";
import { describeKey, tapResolver } from "./internal/resolver-tap.js";
import { acceptProxyHeader, onceBeforeClose, proxyHeaderExpected, type InboundProxyProtocol } from "./proxy-protocol-accept.js";
import {
  DEFAULT_TIMEOUTS,
  type ListenerConfig,
  type RouteConfig,
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

export type { ListenerAddress };

export interface CloseOptions {
  /** how long established connections may finish before they are destroyed (default 10 s) */
  timeout?: number;
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
export class Proxy implements ProtocolContext {
  /** extension points; see hooks.ts for what each tap may do */
  readonly hooks: ProxyHooks = buildHooks();
  /** report-only events: connection open/close, upstream errors, listening */
  readonly events = new ReportEmitter((event, err) =>
    this.logger.error("event listener failed", { event, error: err instanceof Error ? err.message : String(err) }),
  );
  readonly logger: Logger;
  #timeouts: Timeouts;

  readonly #listeners = new Map<string, ListenerRuntime>();
  readonly #protocols = new Map<string, ProtocolHandler>();
  readonly #connections = new Set<Connection>();
  /** @internal idle timeouts of relayed connections, one sweep for all (idle.ts) */
  readonly idleSweeper = new IdleSweeper(this.#connections);
  readonly #stats = new StatsCollector();
  readonly #plugins: ProxyPlugin[];
  /** checks listener and route options against the protocols and plugins (options-check.ts) */
  readonly #options: OptionsChecker;
  readonly #ssrfAllow: IpMatcher | undefined;
  readonly #ssrfDisabled: boolean;
  // undefined only while the constructor applies plugins
  #routes!: RouteTable;
  readonly #matchKeys = new MatchKeys();
  readonly #refusals: Refusals;
  #protocolsClosed = false;
  #closing = false;
  #listening = false;

  constructor(options: ProxyOptions) {
    if (!options || !Array.isArray(options.listeners)) throw new ConfigError("listeners: must be an array");
    this.logger = options.logger ?? createJsonLogger();
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#refusals = new Refusals(this.logger);
    this.#ssrfAllow = options.ssrf?.allow?.length ? new IpMatcher(options.ssrf.allow) : undefined;
    this.#ssrfDisabled = options.ssrf?.disabled === true;
    const names = new Set<string>();
    for (const l of options.listeners) {
      if (names.has(l.name)) throw new ConfigError(`listeners: duplicate name "${l.name}"`);
      names.add(l.name);
      this.#listeners.set(l.name, this.#runtime(l));
    }
    this.registerProtocol(new TcpProtocol());
    if (options.resolver) tapResolver(this.hooks, options.resolver, options.resolverCacheTtl ?? 0, this.#matchKeys);
    this.hooks.onResolve.tap({ name: "RouteTable", stage: Stage.DEFAULT_ROUTES }, ({ key }) => this.#routes.match(key));
    this.#plugins = [...(options.plugins ?? [])];
    this.#options = new OptionsChecker(this.#protocols, this.#plugins, this.logger);
    for (const plugin of this.#plugins) {
      try {
        plugin.apply(this);
      } catch (err) {
        throw new PluginError("apply", plugin.name, err);
      }
    }
    // compiled once the plugins registered their protocols' match keys
    this.#routes = new RouteTable(options.routes ?? [], this.#matchKeys);
    this.#options.check(options.listeners, options.routes ?? [], this.#routes.routes);
  }

  /** Plugins in the order they were applied. */
  get plugins(): readonly ProxyPlugin[] {
    return this.#plugins;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Makes a protocol available to listeners that name it, with the match keys it declares. */
  registerProtocol(handler: ProtocolHandler): void {
    for (const [name, kind] of Object.entries(handler.matchKeys ?? {})) this.#registerMatchKey(name, kind, `protocol "${handler.name}"`);
    this.#protocols.set(handler.name, handler);
    this.#recompileRoutes();
  }

  /**
   * Declares a routing-key field routes may match on, and how it compares: `"glob"`
   * (case-sensitive), `"host-glob"` (case-insensitive host labels) or `"cidr"` (IPs and ranges).
   * The route table compiles `match.<name>` by it and the resolver cache keys by it. A key
   * registered again with another kind throws `ConfigError`. Call it from a plugin's `apply`.
   */
  registerMatchKey(name: string, kind: MatchKeyKind): void {
    this.#registerMatchKey(name, kind, "registerMatchKey");
    this.#recompileRoutes();
  }

  #registerMatchKey(name: string, kind: MatchKeyKind, by: string): void {
    this.#matchKeys.register(name, kind, by);
  }

  /** Match keys known to this proxy (core's and the registered ones), with their kinds. */
  get matchKeys(): ReadonlyArray<readonly [string, MatchKeyKind]> {
    return this.#matchKeys.entries();
  }

  /** a key registered after the table was built changes how its routes compile */
  #recompileRoutes(): void {
    if (this.#routes === undefined) return;
    const configs = this.#routes.routes.flatMap((r) => (r.config === undefined ? [] : [r.config]));
    const table = new RouteTable(configs, this.#matchKeys);
    // the same configs, checked before: this records the new route objects as checked
    this.#options.check(this.listeners, configs, table.routes);
    this.#routes = table;
  }

  /**
   * Replaces the route table; established connections keep the route they have. Route options
   * are checked against `listeners` (default: the current ones) — a reload that also changes
   * listeners passes the set the routes will serve.
   */
  setRoutes(routes: RouteConfig[], listeners: readonly Readonly<ListenerConfig>[] = this.listeners): void {
    const table = new RouteTable(routes, this.#matchKeys);
    this.#options.check(listeners, routes, table.routes);
    this.#routes = table;
  }

  get routes(): RouteTable {
    return this.#routes;
  }

  /** Binds every listener; resolves once all are bound (none stays bound on failure). */
  listen(): Promise<void> {
    if (this.#closing) return Promise.reject(new ConfigError("the proxy was closed; make a new Proxy to listen again"));
    // a second call while the first is binding waits for it, instead of binding every listener twice
    this.#listenPromise ??= this.#listen().catch((err: unknown) => {
      this.#listenPromise = undefined;
      throw err;
    });
    return this.#listenPromise;
  }

  #listenPromise: Promise<void> | undefined;

  async #listen(): Promise<void> {
    for (const l of this.#listeners.values()) {
      if (!this.#protocols.has(l.config.protocol)) {
        throw new ConfigError(
          `listener "${l.config.name}": no protocol "${l.config.protocol}" is registered (add its plugin, e.g. new HttpProtocol())`,
        );
      }
    }
    const bound: ListenerRuntime[] = [];
    try {
      for (const l of this.#listeners.values()) {
        await this.#bind(l);
        bound.push(l);
      }
    } catch (err) {
      await Promise.all(bound.map(unbindListener));
      throw err;
    }
    this.#listening = true;
  }

  async #bind(l: ListenerRuntime): Promise<void> {
    await bindListener(l, (socket) => this.#accept(l, socket), this.logger);
    this.events.emit("listening", this.#addressOf(l));
  }

  /** Proxy-wide default deadlines (a listener's own `timeouts` override them). */
  get timeouts(): Readonly<Timeouts> {
    return this.#timeouts;
  }

  /** Replaces the proxy-wide default deadlines; they apply to every phase that starts from now on. */
  setTimeouts(timeouts: Partial<Timeouts>): void {
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    for (const l of this.#listeners.values()) l.timeouts = { ...this.#timeouts, ...l.config.timeouts };
  }

  /**
   * Adds a listener (bound at once when the proxy is listening). Its name must not be in use; a
   * listener being removed gives its name up at once (its draining connections keep their own
   * settings), so remove + add moves a listener to another address.
   */
  async addListener(config: ListenerConfig): Promise<void> {
    if (this.#closing) throw new ConfigError("the proxy is closing");
    if (this.#listeners.has(config.name)) {
      throw new ConfigError(`listeners: duplicate name "${config.name}"`);
    }
    if (!this.#protocols.has(config.protocol)) {
      throw new ConfigError(`listener "${config.name}": no protocol "${config.protocol}" is registered`);
    }
    // the new listener's options, and the options of routes that will reach it
    const routes = this.#routes.routes.flatMap((r) => (r.config === undefined ? [] : [r.config]));
    this.#options.check([...this.listeners, config], routes);
    const l = this.#runtime(config);
    this.#listeners.set(config.name, l);
    if (!this.#listening) return;
    try {
      await this.#bind(l);
    } catch (err) {
      this.#listeners.delete(config.name);
      throw err;
    }
  }

  /**
   * Stops accepting on a listener, lets its connections finish until `timeout`, destroys the rest,
   * then forgets the listener. Other listeners are untouched.
   */
  async removeListener(name: string, options: CloseOptions = {}): Promise<void> {
    const l = this.#listeners.get(name);
    if (!l) throw new ConfigError(`no listener "${name}"`);
    this.#listeners.delete(name);
    const unbound = unbindListener(l);
    await this.#drain((c) => this.#runtimeOf(c) === l, () => l.active > 0, options.timeout ?? 10_000);
    await unbound;
    l.server = undefined;
  }

  /**
   * Changes a bound listener's certificates, deadlines, connection limit or protocol options for
   * connections accepted from now on (certificate rotation without a restart). Established
   * connections keep what they started with. A bad certificate throws and changes nothing.
   */
  reconfigureListener(name: string, changes: ListenerChanges): void {
    const l = this.#listeners.get(name);
    if (!l) throw new ConfigError(`no listener "${name}"`);
    if (changes.options !== undefined) this.#options.check([{ ...l.config, options: changes.options }], []);
    applyListenerChanges(l, changes, this.#timeouts);
    this.#runtimes.set(l.config, l);
  }

  /** Listener configs as they are now. */
  get listeners(): ReadonlyArray<Readonly<ListenerConfig>> {
    return [...this.#listeners.values()].map((l) => l.config);
  }

  /**
   * The runtime behind each listener config object a connection was accepted with (a connection
   * keeps its config object; reconfiguring or removing a listener does not change it).
   */
  readonly #runtimes = new WeakMap<Readonly<ListenerConfig>, ListenerRuntime>();

  #runtime(config: ListenerConfig): ListenerRuntime {
    const l = listenerRuntime(config, this.#timeouts);
    this.#runtimes.set(l.config, l);
    return l;
  }

  #runtimeOf(conn: Connection): ListenerRuntime | undefined {
    return this.#runtimes.get(conn.listener);
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
    const a = l.server!.address() as AddressInfo;
    return { name: l.config.name, protocol: l.config.protocol, host: a.address, port: a.port };
  }

  /**
   * Stops accepting, asks established connections to finish (keep-alive sessions close after
   * their current message), waits until `timeout`, then destroys what is left.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    this.#closing = true;
    const unbound = [...this.#listeners.values()].map(unbindListener);
    await this.#drain(() => true, () => this.#connections.size > 0, options.timeout ?? 10_000);
    await Promise.all(unbound);
    this.#listening = false;
    await this.#closeProtocols();
  }

  /** Each protocol's `close()`, once, after every connection is gone; a failing one is logged. */
  async #closeProtocols(): Promise<void> {
    if (this.#protocolsClosed) return;
    this.#protocolsClosed = true;
    for (const protocol of new Set(this.#protocols.values())) {
      if (protocol.close === undefined) continue;
      try {
        await protocol.close(this);
      } catch (err) {
        this.logger.error("protocol close failed", { protocol: protocol.name, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }

  /**
   * Asks connections to finish (keep-alive sessions close after their current message), waits
   * until they have closed or `timeout` passed, then destroys what is left.
   */
  async #drain(select: (c: Connection) => boolean, open: () => boolean, timeout: number): Promise<void> {
    for (const c of this.#connections) if (select(c)) c.drain();
    if (open()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, timeout);
        const check = () => {
          if (!open()) finish();
        };
        const waiters = this.#closeWaiters;
        function finish() {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        }
        waiters.add(check);
      });
    }
    for (const c of [...this.#connections]) if (select(c)) c.destroy("shutdown");
  }

  /** checks run after each connection closes (draining listeners or the whole proxy) */
  readonly #closeWaiters = new Set<() => void>();

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
    // a listener that terminates TLS before its protocol reads serves TLS connections only: hooks
    // and the open event see it from accept on (the SNI is known once the handshake is done)
    // (core's tcp protocol terminates in its own step, except on a passthrough listener)
    if (l.certs && ((this.#protocols.get(l.config.protocol)?.tlsMode ?? "accept") === "accept" || (l.config.protocol === "tcp" && l.config.options?.["tlsPassthrough"] !== true))) {
      conn.info.tls = true;
    }
    // a trusted PROXY peer's connection is reported open once its header gave the client address
    // (or as it closes, whichever comes first: open always precedes close)
    const proxyHeader = l.config.proxyProtocol === undefined ? undefined : proxyHeaderExpected(conn);
    const reportOpen = proxyHeader === undefined ? undefined : onceBeforeClose(conn, () => this.events.listenerCount("connectionOpen") > 0 && this.events.emit("connectionOpen", conn.info));
    if (proxyHeader === undefined && this.events.listenerCount("connectionOpen") > 0) this.events.emit("connectionOpen", conn.info);
    if (this.#closing) return this.#refuse(l, conn, "shutdown", "shutdown", new ShuttingDownError());
    if (l.config.maxConnections !== undefined && l.active > l.config.maxConnections) {
      this.logger.warn("connection limit reached", { listener: l.config.name, id: conn.id });
      const error = new ConnectionRejectedError(`listener "${l.config.name}" has reached maxConnections (${l.config.maxConnections})`);
      return this.#refuse(l, conn, "connection-limit", "rejected", error);
    }
    const t = l.timeouts;
    conn.timer(ConnectionTimer.HANDSHAKE, t.handshake, () =>
      this.#refuse(l, conn, "handshake-timeout", "handshake-timeout", new UpstreamTimeoutError("handshake", "client handshake timed out")),
    );
    if (t.lifetime > 0) conn.timer(ConnectionTimer.LIFETIME, t.lifetime, () => conn.destroy("lifetime-timeout"));
    void this.#start(l, conn, proxyHeader, reportOpen);
  }

  async #start(l: ListenerRuntime, conn: Connection, proxyHeader?: InboundProxyProtocol, reportOpen?: () => void): Promise<void> {
    try {
      if (proxyHeader !== undefined) {
        const outcome = await acceptProxyHeader(conn, proxyHeader);
        reportOpen?.();
        if (!outcome.ok) return conn.destroy(outcome.reason, outcome.error);
      }
      if (this.hooks.onAccept.isUsed()) {
        const rejection = await this.hooks.onAccept.promise(conn);
        if (conn.destroyed) return;
        if (rejection) {
          this.logger.info("connection rejected", { id: conn.id, reason: rejection.reason });
          return this.#refuse(l, conn, "rejected", "rejected", new ConnectionRejectedError(rejection.reason));
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

  /**
   * Closes a connection on core's account, through its protocol's `refuse` when the client can
   * read an answer: not while a TLS handshake is under way, nor on a listener that terminates TLS
   * before the handshake started.
   */
  #refuse(l: ListenerRuntime, conn: Connection, kind: RefusalKind, reason: CloseReason, error: ProxyError): void {
    const protocol = this.#protocols.get(l.config.protocol);
    // the listener config the connection was accepted with (a reconfigured listener's new
    // certificates apply to later connections only)
    const tlsFirst = conn.listener.tls !== undefined && (protocol?.tlsMode ?? "accept") === "accept";
    const canHear = !tlsHandshakeInProgress(conn) && !(tlsFirst && conn.socket === conn.rawSocket);
    this.#refusals.refuse(conn, protocol, canHear, { kind, reason, error });
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
    return this.#runtimeOf(conn)?.timeouts ?? this.#timeouts;
  }

  /** Certificate store of a listener with `tls` (for protocols that upgrade in-protocol). */
  certificatesFor(conn: Connection): CertificateStore | undefined {
    return this.#runtimeOf(conn)?.certs;
  }

  /**
   * Finds where a routing key goes: runs `onResolve` (custom resolvers first, the route table
   * last). Throws `ResolveError` (RouteNotFoundError when nothing answers).
   */
  async resolve(conn: Connection, key: RouteKey): Promise<RouteMatchResult> {
    enterRouting(conn);
    if (conn.identity !== undefined) Object.assign(key, identityKeyFields(conn.identity));
    const match = await this.hooks.onResolve.promise({ key, connection: conn });
    if (!match) throw new RouteNotFoundError(`no route for ${describeKey(key)}`);
    this.#options.checkAnswered(match.route, key);
    this.#authorize(conn, key, match);
    this.#route(conn, match.route);
    return match;
  }

  /** `onRouted` taps may refuse the route they were given: their ResolveError is thrown */
  #authorize(conn: Connection, key: RouteKey, match: RouteMatchResult): void {
    if (!this.hooks.onRouted.isUsed()) return;
    const refusal = this.hooks.onRouted.call({ key, connection: conn, match });
    if (refusal !== undefined) throw refusal;
  }

  /**
   * Records a connection's route: counted once per route it is on (a keep-alive HTTP connection
   * whose next request goes elsewhere moves from one route's count to the other). A connection
   * that closed while its resolver was still working is already counted out: left alone.
   */
  #route(conn: Connection, route: Route): void {
    if (conn.destroyed) return;
    const before = conn.route;
    if (before?.name !== route.name) this.#stats.routed(route.name, before?.name);
    conn.route = route;
  }

  /**
   * The same answer as `resolve`, computed synchronously when only the route table answers
   * `onResolve` (no resolver, no plugin taps): saves the promise hops on the accept path.
   * Returns undefined when taps must run; use `resolve` then. Throws RouteNotFoundError.
   */
  tryResolveSync(conn: Connection, key: RouteKey): RouteMatchResult | undefined {
    if (this.hooks.onResolve.taps.length !== 1) return undefined;
    enterRouting(conn);
    if (conn.identity !== undefined) Object.assign(key, identityKeyFields(conn.identity));
    const match = this.#routes.match(key);
    if (!match) throw new RouteNotFoundError(`no route for ${describeKey(key)}`);
    this.#authorize(conn, key, match);
    this.#route(conn, match.route);
    return match;
  }

  /**
   * Dials a target for a connection: connect timeout from its listener, aborted with the
   * connection, SSRF guard when the route is dynamic. With `pooled`, the socket is for a
   * keep-alive pool that lends it to other connections too: it is not the connection's
   * (`conn.upstream` is left alone and the connection's end does not destroy it), and
   * `timeoutMs` may give the dial its own deadline.
   */
  dial(
    conn: Connection,
    target: Target,
    dynamic: boolean,
    options: Pick<DialOptions, "allowHalfOpen" | "onread"> & { pooled?: boolean; timeoutMs?: number } = {},
  ): Promise<Socket> {
    const guard = dynamic && !this.#ssrfDisabled ? { allow: this.#ssrfAllow } : false;
    return dial(target, {
      timeoutMs: options.timeoutMs ?? this.timeoutsFor(conn).connect,
      guard,
      allowHalfOpen: options.allowHalfOpen,
      onread: options.onread,
      // the connection owns the socket from the start: destroying the connection ends the dial
      onSocket: options.pooled === true ? undefined : (socket) => {
        if (conn.destroyed) socket.destroy();
        else conn.upstream = socket;
      },
    });
  }

  /**
   * Picks a target of the route and connects, asking `onUpstreamResponse` taps (plugin-retry)
   * whether to try again after a connect failure. Used by L4 protocols; HTTP has its own pool.
   * With `{ tls: "starttls" }` a target's `tls` is left for the protocol to start after its
   * plaintext preamble (`UpstreamHandshake.upgrade`); the returned `target` still carries it.
   */
  connectUpstream(
    conn: Connection,
    match: RouteMatchResult,
    request?: ProxyRequest,
    options?: ConnectUpstreamOptions,
  ): Promise<{ socket: Socket; target: Target }> {
    return connectWithRetries(this, conn, match, request, options);
  }

  /** @internal called once by Connection.destroy */
  connectionClosed(conn: Connection, info: CloseInfo): void {
    if (!this.#connections.delete(conn)) return;
    const l = this.#runtimeOf(conn);
    if (l) l.active--;
    this.#stats.closed(conn.listener.name, conn.route?.name, info);
    try {
      if (this.hooks.onClose.isUsed()) this.hooks.onClose.call(conn, info);
    } catch (err) {
      this.logger.error("onClose tap failed", { id: conn.id, error: (err as Error).message });
    }
    if (this.events.listenerCount("connectionClose") > 0) this.events.emit("connectionClose", conn.info, info);
    for (const check of this.#closeWaiters) check();
  }
}



type AcceptedSocket = OwnedSocket;

/**
 * A connection still in its handshake is routing now. One already past it (an L7 session whose
 * every message is routed) keeps its state: per-message routing is no phase of the connection.
 */
function enterRouting(conn: Connection): void {
  if (conn.state === "handshaking") conn.setState("routing");
}

function onClientError(this: AcceptedSocket, err: Error): void {
  this[kConnection].destroy("client-error", err);
}

function onClientClose(this: AcceptedSocket): void {
  this[kConnection].clientClosed();
}
