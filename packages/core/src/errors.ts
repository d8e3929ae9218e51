/**
 * Errors raised by Switchyard. `code` is the stable contract (`PRX_ERR_*`); the classes are a
 * convenience for `instanceof`, kept reliable across copies with a `Symbol.for` brand.
 */
const BRAND = Symbol.for("switchyard.ProxyError");

export class ProxyError extends Error {
  override name = "ProxyError";
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    (this as unknown as Record<symbol, boolean>)[BRAND] = true;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== ProxyError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** A tap threw or rejected. Names the hook and the plugin; `cause` is the original error. */
export class PluginError extends ProxyError {
  override name = "PluginError";
  readonly hook: string;
  readonly plugin: string;
  constructor(hook: string, plugin: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super("PRX_ERR_PLUGIN", `plugin "${plugin}" failed in hook ${hook}: ${detail}`, { cause });
    this.hook = hook;
    this.plugin = plugin;
  }
}

/** Invalid options or configuration given to a constructor. */
export class ConfigError extends ProxyError {
  override name = "ConfigError";
  constructor(message: string, options?: ErrorOptions) {
    super("PRX_ERR_CONFIG", message, options);
  }
}

/** Kinds of resolver failure; each protocol maps them to its own reply. */
export const ResolveErrorKind = {
  NOT_FOUND: "NOT_FOUND",
  UNAVAILABLE: "UNAVAILABLE",
  TIMEOUT: "TIMEOUT",
  FORBIDDEN: "FORBIDDEN",
  INTERNAL: "INTERNAL",
} as const;
export type ResolveErrorKind = (typeof ResolveErrorKind)[keyof typeof ResolveErrorKind];

/** A resolver (or the route table) could not produce a target. */
export class ResolveError extends ProxyError {
  override name = "ResolveError";
  readonly kind: ResolveErrorKind;
  constructor(kind: ResolveErrorKind, message?: string, options?: ErrorOptions) {
    super(`PRX_ERR_RESOLVE_${kind}`, message ?? `resolve failed: ${kind.toLowerCase()}`, options);
    this.kind = kind;
  }
}

/** No route matched the routing key. */
export class RouteNotFoundError extends ResolveError {
  override name = "RouteNotFoundError";
  constructor(message = "no route matches", options?: ErrorOptions) {
    super("NOT_FOUND", message, options);
  }
}

/** The upstream refused, reset or was unreachable while connecting. */
export class UpstreamConnectError extends ProxyError {
  override name = "UpstreamConnectError";
  constructor(message: string, options?: ErrorOptions) {
    super("PRX_ERR_UPSTREAM_CONNECT", message, options);
  }
}

/** A phase deadline passed (connect, handshake, headers, idle, lifetime). */
export class UpstreamTimeoutError extends ProxyError {
  override name = "UpstreamTimeoutError";
  readonly phase: string;
  constructor(phase: string, message?: string, options?: ErrorOptions) {
    super("PRX_ERR_UPSTREAM_TIMEOUT", message ?? `upstream ${phase} timed out`, options);
    this.phase = phase;
  }
}

/** The upstream closed or reset the connection after it was established. */
export class UpstreamResetError extends ProxyError {
  override name = "UpstreamResetError";
  constructor(message = "upstream connection reset", options?: ErrorOptions) {
    super("PRX_ERR_UPSTREAM_RESET", message, options);
  }
}

/** A target from a dynamic resolver points at a refused address range. */
export class SsrfBlockedError extends ProxyError {
  override name = "SsrfBlockedError";
  readonly address: string;
  constructor(address: string) {
    super("PRX_ERR_SSRF_BLOCKED", `target address ${address} is not allowed`);
    this.address = address;
  }
}

/** The client sent bytes the protocol cannot accept. */
export class ProtocolError extends ProxyError {
  override name = "ProtocolError";
  constructor(message: string, options?: ErrorOptions) {
    super("PRX_ERR_PROTOCOL", message, options);
  }
}

/** The proxy is shutting down and does not take new work. */
export class ShuttingDownError extends ProxyError {
  override name = "ShuttingDownError";
  constructor() {
    super("PRX_ERR_SHUTTING_DOWN", "proxy is shutting down");
  }
}

/** A tap on onAccept refused the connection. */
export class ConnectionRejectedError extends ProxyError {
  override name = "ConnectionRejectedError";
  constructor(reason: string) {
    super("PRX_ERR_REJECTED", `connection rejected: ${reason}`);
  }
}
