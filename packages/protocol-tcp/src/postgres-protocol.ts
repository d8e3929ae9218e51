/**
 * `PostgresProtocol`: the plugin that registers the "postgres" protocol. Clients connect to the
 * proxy as to a PostgreSQL server; each connection is routed by its startup packet (`database`,
 * `user`, `application_name`, and `sni` under TLS) and then relayed byte for byte.
 */
import { ConfigError, type Connection, type ProtocolHandler, type Proxy, type ProxyPlugin, type Refusal } from "@switchyard/core";
import { CancelKeys } from "./postgres-cancel-keys.js";
import { PostgresSession, type PostgresSessionSettings } from "./postgres-session.js";
import { buildErrorResponse } from "./postgres-wire.js";
import { checkDatabaseRouteOptions } from "./route-options.js";

const PLUGIN_NAME = "PostgresProtocol";

export interface PostgresOptions {
  /**
   * From the backend connect until the backend's ReadyForQuery (authentication, including the
   * client's part of it), in ms; 0 disables. Default 30 000.
   */
  authTimeoutMs?: number;
  /** Largest backend message accepted before ReadyForQuery, in bytes. Default 1 MiB. */
  maxBackendStartupMessage?: number;
}

export class PostgresProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "postgres";
  /** TLS is negotiated inside the protocol (SSLRequest, or direct SSL with ALPN `postgresql`) */
  readonly tlsMode = "protocol" as const;
  readonly routeOptions = ["postgres"] as const;
  /** routes match the startup's `database` and `user` (case-sensitive globs) */
  readonly matchKeys = Object.freeze({ database: "glob", user: "glob" } as const);
  readonly #settings: PostgresSessionSettings;
  readonly #keys = new WeakMap<Proxy, CancelKeys>();

  constructor(options: PostgresOptions = {}) {
    const authTimeoutMs = options.authTimeoutMs ?? 30_000;
    const maxMessage = options.maxBackendStartupMessage ?? 1024 * 1024;
    if (!Number.isFinite(authTimeoutMs) || authTimeoutMs < 0) throw new ConfigError(`${PLUGIN_NAME}: authTimeoutMs must be a number >= 0`);
    if (!Number.isInteger(maxMessage) || maxMessage < 1024) throw new ConfigError(`${PLUGIN_NAME}: maxBackendStartupMessage must be an integer >= 1024`);
    this.#settings = { authTimeoutMs, maxBackendStartupMessage: maxMessage };
  }

  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
    this.#keysFor(proxy);
  }

  /** `options.postgres` of a route: a startup rewrite (`{ database: "app" }`). */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    checkDatabaseRouteOptions(options["postgres"], `${where}.postgres`, true);
  }

  handle(conn: Connection): Promise<void> {
    return new PostgresSession(conn, this.#keysFor(conn.proxy), this.#settings).run();
  }

  /**
   * Refuses a connection the proxy will not serve, in PostgreSQL terms, before any startup
   * exchange: an ErrorResponse (53300 too many connections for "rejected", 57P01 for
   * "shutdown", 57P03 otherwise), then the close. For core-originated refusals (listener
   * limits, onAccept rejections, shutdown) once core routes them through the protocol; core
   * today closes those connections without a word (see the README's "Core gaps").
   */
  refuse(conn: Connection, refusal: Refusal): void {
    const [code, message] =
      refusal.kind === "connection-limit"
        ? ["53300", "sorry, too many clients already"]
        : refusal.kind === "shutdown"
          ? ["57P01", "the proxy is shutting down"]
          : refusal.kind === "handshake-timeout"
            ? ["08006", "the startup packet did not arrive in time"]
            : ["57P03", "the proxy cannot accept this connection"];
    // core ends the socket after this answer and waits (bounded) for the client to close
    conn.socket.write(buildErrorResponse(code, message));
  }

  /** How many cancel keys a proxy has issued to sessions that are still open. */
  cancelKeyCount(proxy: Proxy): number {
    return this.#keys.get(proxy)?.size ?? 0;
  }

  #keysFor(proxy: Proxy): CancelKeys {
    let keys = this.#keys.get(proxy);
    if (keys === undefined) {
      keys = new CancelKeys();
      this.#keys.set(proxy, keys);
    }
    return keys;
  }
}
