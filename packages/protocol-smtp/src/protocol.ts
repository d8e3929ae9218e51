/**
 * `SmtpProtocol`: the plugin that registers the "smtp" protocol with a proxy and runs an SMTP
 * session for each accepted connection of listeners that name it.
 */
import { hostname } from "node:os";
import { ConfigError, upgradeToTls, type Connection, type ProtocolHandler, type Proxy, type ProxyPlugin, type Refusal } from "@switchyard/core";
import { ClientInput } from "./client-input.js";
import { smtpHooksOf, type SmtpHooks } from "./hooks.js";
import { checkRouteOptions, resolveOptions, ROUTE_KEYS, type ResolvedSmtpOptions, type SmtpListenerOptions } from "./options.js";
import { formatReply } from "./reply.js";
import { SmtpSession } from "./session.js";

const PLUGIN_NAME = "SmtpProtocol";

const hooksByProxy = new WeakMap<Proxy, SmtpHooks>();

/** Listener option of SmtpProtocol only: TLS from the first byte (port 465) instead of STARTTLS. */
export interface SmtpProtocolListenerOptions extends SmtpListenerOptions {
  /** the listener's `tls` is used from the first byte ("submissions", RFC 8314) instead of for STARTTLS (default false) */
  implicitTls?: boolean;
}

export class SmtpProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "smtp";
  /** TLS is the protocol's business: STARTTLS, or `implicitTls` */
  readonly tlsMode = "protocol" as const;
  /** the keys of `route.options` this protocol reads */
  readonly routeOptions = ROUTE_KEYS;
  /** routing keys an SMTP session fills: EHLO domain and recipient domain as host globs, the AUTH user as a glob */
  readonly matchKeys = Object.freeze({ ehlo: "host-glob", rcptDomain: "host-glob", authUser: "glob" } as const);
  readonly #defaults: SmtpProtocolListenerOptions;

  /** `options` are the defaults of every smtp listener; `ListenerConfig.options` override them. */
  constructor(options: SmtpProtocolListenerOptions = {}) {
    const { implicitTls, ...rest } = options;
    checkImplicit(PLUGIN_NAME, implicitTls);
    resolveOptions(PLUGIN_NAME, rest as Record<string, unknown>);
    this.#defaults = { ...options };
  }

  /** The SMTP hooks of a proxy (onEhlo, onMailFrom, onRcptTo, onData). */
  static getHooks(proxy: Proxy): SmtpHooks {
    return smtpHooksOf(hooksByProxy, proxy);
  }

  /** Unknown or invalid listener options throw `ConfigError` (the proxy calls this before listening). */
  checkListenerOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    this.#resolve(options, where);
  }

  /** Invalid SMTP route options throw `ConfigError`; keys of other readers are left to them. */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    checkRouteOptions(options, where);
  }

  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
  }

  /** resolved options per listener config object (a reconfigured listener gets a new one) */
  readonly #resolved = new WeakMap<object, { options: ResolvedSmtpOptions; implicitTls: boolean }>();

  async handle(conn: Connection): Promise<void> {
    let resolved = this.#resolved.get(conn.listener);
    if (resolved === undefined) {
      resolved = this.#resolve(conn.listener.options ?? {}, `listener "${conn.listener.name}": options`);
      this.#resolved.set(conn.listener, resolved);
    }
    const { options, implicitTls } = resolved;
    if (implicitTls) {
      const store = conn.proxy.certificatesFor(conn);
      if (store === undefined) throw new Error(`listener "${conn.listener.name}": implicitTls needs the listener's tls`);
      await upgradeToTls(conn, store, { timeoutMs: conn.proxy.timeoutsFor(conn).handshake });
      if (conn.destroyed) return;
    }
    const session = new SmtpSession(conn, options, SmtpProtocol.getHooks(conn.proxy), new ClientInput(conn));
    await session.run();
  }

  /**
   * A close the core decides (connection limit, shutdown, an onAccept rejection, a deadline),
   * answered in SMTP terms before the socket goes: `421 4.3.2 …` (RFC 5321 §3.8).
   */
  refuse(conn: Connection, refusal: Refusal): void {
    const socket = conn.socket;
    if (socket.destroyed || !socket.writable) return;
    const own = conn.listener.options?.hostname;
    const host = typeof own === "string" ? own : (this.#defaults.hostname ?? hostname());
    const [enhanced, text] =
      refusal.kind === "shutdown"
        ? ["4.3.2", `${host} Service shutting down, closing transmission channel`]
        : refusal.kind === "connection-limit"
          ? ["4.7.0", `${host} Service not available (too many connections), closing transmission channel`]
          : refusal.kind === "handshake-timeout"
            ? ["4.4.2", `${host} Error: timeout exceeded, closing transmission channel`]
            : ["4.7.0", `${host} Service not available, closing transmission channel`];
    // core ends the socket after this reply and waits (bounded) for the client to close
    socket.write(formatReply(421, enhanced, text));
  }


  #resolve(layer: Readonly<Record<string, unknown>>, where: string): { options: ResolvedSmtpOptions; implicitTls: boolean } {
    const { implicitTls: ownImplicit, ...rest } = layer;
    const { implicitTls: defImplicit, ...defaults } = this.#defaults;
    checkImplicit(where, ownImplicit);
    return {
      options: resolveOptions(where, defaults as Record<string, unknown>, rest),
      implicitTls: (ownImplicit ?? defImplicit) === true,
    };
  }
}

function checkImplicit(where: string, value: unknown): void {
  if (value !== undefined && typeof value !== "boolean") throw new ConfigError(`${where}: implicitTls must be a boolean`);
}
