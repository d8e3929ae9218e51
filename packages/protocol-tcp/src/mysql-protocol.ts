/**
 * `MysqlProtocol`: the plugin that registers the "mysql" protocol (MySQL and MariaDB). The proxy
 * greets each client itself, routes by the `database` and `user` of the client's handshake
 * response, and forwards authentication to the chosen backend without knowing any password.
 */
import { ConfigError, type Connection, type ProtocolHandler, type Proxy, type ProxyPlugin, type Refusal } from "@switchyard/core";
import { MysqlError, MysqlSession, type MysqlSessionSettings } from "./mysql-session.js";
import { DEFAULT_CAPABILITIES, buildErr, buildPacket } from "./mysql-wire.js";
import { checkDatabaseRouteOptions } from "./route-options.js";

const PLUGIN_NAME = "MysqlProtocol";

export interface MysqlOptions {
  /** server version in the proxy's greeting (clients read features from it); default "8.0.36-switchyard" */
  serverVersion?: string;
  /**
   * Capability flags the greeting offers (CLIENT_SSL is added when the listener has `tls`,
   * removed otherwise). Default: what MySQL ≥ 5.7 and MariaDB ≥ 10.2 share, with
   * CLIENT_DEPRECATE_EOF. A backend lacking a flag the client then chose is refused (ERR 9002).
   */
  capabilities?: number;
  /** collation id in the greeting; default 45 (utf8mb4_general_ci) */
  charset?: number;
  /** from the backend connect until its OK or ERR (authentication), in ms; 0 disables; default 30 000 */
  authTimeoutMs?: number;
}

export class MysqlProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "mysql";
  /** TLS is negotiated inside the protocol (CLIENT_SSL and the SSLRequest packet) */
  readonly tlsMode = "protocol" as const;
  readonly routeOptions = ["mysql"] as const;
  /** routes match the startup's `database` and `user` (case-sensitive globs) */
  readonly matchKeys = Object.freeze({ database: "glob", user: "glob" } as const);
  readonly #settings: MysqlSessionSettings;

  constructor(options: MysqlOptions = {}) {
    const serverVersion = options.serverVersion ?? "8.0.36-switchyard";
    if (typeof serverVersion !== "string" || serverVersion.includes("\0") || serverVersion.length > 200) {
      throw new ConfigError(`${PLUGIN_NAME}: serverVersion must be a string without NUL, at most 200 characters`);
    }
    const capabilities = options.capabilities ?? DEFAULT_CAPABILITIES;
    if (!Number.isInteger(capabilities) || capabilities < 0 || capabilities > 0xffffffff) {
      throw new ConfigError(`${PLUGIN_NAME}: capabilities must be a 32-bit flag set`);
    }
    const charset = options.charset ?? 45;
    if (!Number.isInteger(charset) || charset < 1 || charset > 255) throw new ConfigError(`${PLUGIN_NAME}: charset must be a collation id 1-255`);
    const authTimeoutMs = options.authTimeoutMs ?? 30_000;
    if (!Number.isFinite(authTimeoutMs) || authTimeoutMs < 0) throw new ConfigError(`${PLUGIN_NAME}: authTimeoutMs must be a number >= 0`);
    let id = 0;
    this.#settings = {
      serverVersion,
      capabilities: capabilities >>> 0,
      charset,
      authTimeoutMs,
      nextConnectionId: () => (id = (id % 0x7fffffff) + 1),
    };
  }

  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
  }

  /** `options.mysql` of a route: what the backend is told instead (`{ database: "app" }`). */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    checkDatabaseRouteOptions(options["mysql"], `${where}.mysql`, true);
  }

  /**
   * Refuses a connection the proxy will not serve, in MySQL terms: an ERR packet in place of
   * the greeting, as a server does (1040 too many connections for "rejected", 1053 shutdown
   * for "shutdown", 9001 otherwise), then the close. For core-originated refusals once core
   * routes them through the protocol (see the README's "Core gaps").
   */
  refuse(conn: Connection, refusal: Refusal): void {
    const err =
      refusal.kind === "connection-limit"
        ? buildErr(1040, "08004", "Too many connections")
        : refusal.kind === "shutdown"
          ? buildErr(MysqlError.SERVER_SHUTDOWN, "08S01", "Server shutdown in progress")
          : buildErr(MysqlError.BACKEND_UNREACHABLE, "HY000", "The proxy cannot accept this connection");
    // core ends the socket after this answer and waits (bounded) for the client to close
    conn.socket.write(buildPacket(0, err));
  }

  handle(conn: Connection): Promise<void> {
    return new MysqlSession(conn, this.#settings).run();
  }
}
