import type { Connection } from "./connection.js";
import type { ProxyError } from "./errors.js";
import type { ProtocolContext } from "./protocol-context.js";
import type { Proxy } from "./proxy.js";
import type { MatchKeyKind } from "./routing/match-keys.js";
import type { CloseReason } from "./vocabulary.js";

export type { MatchKeyKind };

/**
 * Why core closes a connection before (or instead of) its protocol's own work:
 * - `"connection-limit"`: the listener's `maxConnections` is reached;
 * - `"rejected"`: an `onAccept` tap refused it;
 * - `"handshake-timeout"`: the listener's `handshake` deadline passed before routing;
 * - `"shutdown"`: it was accepted while the proxy is closing.
 */
export type RefusalKind = "connection-limit" | "rejected" | "handshake-timeout" | "shutdown";

/** What `ProtocolHandler.refuse` is told. */
export interface Refusal {
  readonly kind: RefusalKind;
  /** the close reason the connection gets once refused */
  readonly reason: CloseReason;
  /**
   * `ConnectionRejectedError` (limit, onAccept; its message carries the tap's reason),
   * `UpstreamTimeoutError` (phase "handshake") or `ShuttingDownError`
   */
  readonly error: ProxyError;
}

/**
 * Something that reads `RouteConfig.options` (a protocol or a plugin). The proxy checks every
 * route's options before the route is used: each key must be declared by a protocol the route
 * reaches or by a plugin, and `checkRouteOptions` throws `ConfigError` for a bad value.
 */
export interface RouteOptionsReader {
  /** the keys of `route.options` it reads (e.g. `["retry", "idempotent"]`) */
  readonly routeOptions?: readonly string[];
  /**
   * Throws `ConfigError` when the options it reads are invalid; `where` starts the message
   * (`route "api": options`, or a config path
   * such as `routes[2].options`). Other keys are not its business.
   */
  checkRouteOptions?(options: Readonly<Record<string, unknown>>, where: string): void;
}

/**
 * A plugin taps hooks in `apply`, synchronously, and does nothing else there.
 * `reconfigure` (optional) takes new options on a config reload (SIGHUP) without a restart.
 * A plugin that reads route options declares them (`RouteOptionsReader`).
 */
export interface ProxyPlugin extends RouteOptionsReader {
  readonly name: string;
  apply(proxy: Proxy): void;
  reconfigure?(options: unknown): void;
}

/**
 * A protocol: takes over each accepted connection of listeners that name it. Registered by a
 * protocol package's plugin (`proxy.registerProtocol(this)` in `apply`).
 */
export interface ProtocolHandler extends RouteOptionsReader {
  readonly name: string;
  /**
   * Throws `ConfigError` (message starting with `where`) for unknown or invalid listener
   * `options`. A protocol without it takes no listener options.
   */
  checkListenerOptions?(options: Readonly<Record<string, unknown>>, where: string): void;
  /**
   * "accept": the core terminates TLS on listeners with `tls` before `handle` (HTTP, TCP).
   * "protocol": the protocol upgrades itself when its handshake asks (PostgreSQL, SMTP, MySQL).
   */
  readonly tlsMode?: "accept" | "protocol";
  /**
   * Owns the connection from here on; every failure must end in `conn.destroy(reason)`.
   * A rejected promise destroys the connection with "protocol-error".
   */
  handle(conn: Connection): void | Promise<void>;
  /**
   * The routing-key fields this protocol fills beyond core's (`host`, `sni`, `clientIp`), with
   * how routes compare them: `{ database: "glob", user: "glob" }`. Registered with the protocol
   * (as `proxy.registerMatchKey` does); the route table and the resolver cache read them.
   */
  readonly matchKeys?: Readonly<Record<string, MatchKeyKind>>;
  /**
   * Answers a connection core is about to close, in the protocol's own terms (HTTP 503,
   * PostgreSQL ErrorResponse 53300, MySQL ERR 1040, SMTP 421): write to `conn.socket` and return
   * (or resolve once written). Core then ends the socket, reads and drops what the client still
   * sends for a moment so the answer is not lost to a reset, and destroys the connection with
   * `refusal.reason`; the whole refusal is bounded by a short deadline (1 s). Not called when the
   * client could not read an answer: on a listener that terminates TLS before the handshake is
   * done. `handle` may or may not have run (a handshake timeout comes while it is running).
   */
  refuse?(conn: Connection, refusal: Refusal): void | Promise<void>;
  /**
   * Called once by `Proxy.close()` after every connection is closed: release what the protocol
   * keeps for that proxy (upstream pools, cancel-key maps, timers). `context` is the closing
   * proxy, for a protocol instance registered with several.
   */
  close?(context: ProtocolContext): void | Promise<void>;
}

/** Logs structured lines; the default writes JSON to stderr for warn and error. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines also carry `bindings`; a plugin takes `proxy.logger.child?.({ plugin: name }) ?? proxy.logger`. */
  child?(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** A Logger writing one JSON object per line, whose level can change while running. */
export interface JsonLogger extends Logger {
  setLevel(level: LogLevel): void;
}

export function createJsonLogger(
  write: (line: string) => void = (l) => process.stderr.write(l + "\n"),
  level: LogLevel = "warn",
): JsonLogger {
  const order = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };
  let min = order[level];
  const at = (lvl: "debug" | "info" | "warn" | "error") => (msg: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }));
  };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    setLevel(next) {
      min = order[next];
    },
  };
}

export const silentLogger: Logger = createJsonLogger(() => {}, "silent");
