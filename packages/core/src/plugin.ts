import type { Proxy } from "./proxy.js";

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
  handle(conn: import("./connection.js").Connection): void | Promise<void>;
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
