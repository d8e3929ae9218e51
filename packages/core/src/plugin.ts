import type { Proxy } from "./proxy.js";

/**
 * A plugin taps hooks in `apply`, synchronously, and does nothing else there.
 * `reconfigure` (optional) takes new options on a config reload (SIGHUP) without a restart.
 */
export interface ProxyPlugin {
  readonly name: string;
  apply(proxy: Proxy): void;
  reconfigure?(options: unknown): void;
}

/**
 * A protocol: takes over each accepted connection of listeners that name it. Registered by a
 * protocol package's plugin (`proxy.registerProtocol(this)` in `apply`).
 */
export interface ProtocolHandler {
  readonly name: string;
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
