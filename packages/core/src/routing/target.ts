/**
 * Targets: where traffic goes. Parsed once from configuration or a resolver answer into frozen
 * objects (balancers use their identity as a Set/Map key).
 */
import { ConfigError } from "../errors.js";
import type { Target, TargetInput, TargetTls } from "../types.js";

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443 };
const BAD_HOST_CHARS = /[\s/?#@\\]/;

function describe(input: unknown): string {
  return typeof input === "string" ? `"${input}"` : JSON.stringify(input) ?? String(input);
}

function parsePort(text: string, input: unknown): number {
  if (!/^\d{1,5}$/.test(text)) {
    throw new ConfigError(`invalid target ${describe(input)}: port "${text}" must be an integer 0-65535`);
  }
  return checkPort(Number(text), input);
}

function checkPort(port: unknown, input: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`invalid target ${describe(input)}: port ${String(port)} must be an integer 0-65535`);
  }
  return port;
}

function checkHost(host: unknown, input: unknown): string {
  if (typeof host !== "string") throw new ConfigError(`invalid target ${describe(input)}: host must be a string`);
  let h = host.trim();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h === "") throw new ConfigError(`invalid target ${describe(input)}: empty host`);
  if (BAD_HOST_CHARS.test(h) || h.includes("[") || h.includes("]")) {
    throw new ConfigError(`invalid target ${describe(input)}: bad host "${host}"`);
  }
  return h;
}

function build(host: string, port: number, extra: {
  scheme?: string | undefined;
  tls?: TargetTls | boolean | undefined;
  meta?: Readonly<Record<string, unknown>> | undefined;
}): Target {
  const t: { -readonly [K in keyof Target]: Target[K] } = { host, port };
  if (extra.scheme !== undefined) t.scheme = extra.scheme;
  if (extra.tls === true) t.tls = Object.freeze({});
  else if (typeof extra.tls === "object" && extra.tls !== null) t.tls = Object.freeze({ ...extra.tls });
  if (extra.meta !== undefined) t.meta = Object.freeze({ ...extra.meta });
  return Object.freeze(t);
}

function parseUrl(input: string): Target {
  const scheme = input.slice(0, input.indexOf("://")).toLowerCase();
  const defaultPort = DEFAULT_PORTS[scheme];
  if (defaultPort === undefined) {
    throw new ConfigError(`invalid target "${input}": unsupported scheme "${scheme}:" (use http, https or host:port)`);
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch (cause) {
    const authority = input.slice(scheme.length + 3).split(/[/?#]/)[0] ?? "";
    const m = /^(\[[^\]]*\]|[^:]*):(.*)$/.exec(authority);
    if (authority === "" || m?.[1] === "") throw new ConfigError(`invalid target "${input}": empty host`);
    if (m?.[2] !== undefined) parsePort(m[2], input);
    throw new ConfigError(`invalid target "${input}": not a valid URL`, { cause });
  }
  if (url.username !== "" || url.password !== "") {
    throw new ConfigError(`invalid target "${input}": credentials are not allowed in a target URL`);
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    throw new ConfigError(`invalid target "${input}": a target URL may not have a path, query or fragment`);
  }
  const host = checkHost(url.hostname, input);
  const port = url.port === "" ? defaultPort : parsePort(url.port, input);
  return build(host, port, { scheme, tls: scheme === "https" ? true : undefined });
}

function parseHostPort(input: string): Target {
  const s = input.trim();
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0) throw new ConfigError(`invalid target "${input}": missing "]" after IPv6 address`);
    if (s.length === close + 1) throw new ConfigError(`invalid target "${input}": missing port`);
    if (s[close + 1] !== ":") throw new ConfigError(`invalid target "${input}": expected ":port" after "]"`);
    host = s.slice(1, close);
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) throw new ConfigError(`invalid target "${input}": missing port (write "host:port")`);
    if (s.indexOf(":") !== colon) {
      throw new ConfigError(`invalid target "${input}": write IPv6 addresses in brackets, as "[::1]:5432"`);
    }
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
  }
  if (portText === "") throw new ConfigError(`invalid target "${input}": missing port`);
  return build(checkHost(host, input), parsePort(portText, input), {});
}

/**
 * Parses a target: `"host:port"`, `"[::1]:5432"`, `"http://host[:port]"` (port 80 by default),
 * `"https://host[:port]"` (443, TLS origination on) or `{ host, port, tls?, scheme?, meta? }`
 * where `tls: true` means TLS with default (verifying) options. Returns a frozen object.
 * Throws `ConfigError` naming the input and what is wrong with it.
 */
export function parseTarget(input: TargetInput): Target {
  if (typeof input === "string") {
    if (input.includes("://")) return parseUrl(input.trim());
    return parseHostPort(input);
  }
  if (typeof input !== "object" || input === null) {
    throw new ConfigError(`invalid target ${describe(input)}: expected "host:port", a URL or { host, port }`);
  }
  if (Object.isFrozen(input) && isParsed(input)) return input as Target;
  const { host, port, scheme, tls, meta } = input;
  if (port === undefined) throw new ConfigError(`invalid target ${describe(input)}: missing port`);
  if (tls !== undefined && typeof tls !== "boolean" && (typeof tls !== "object" || tls === null)) {
    throw new ConfigError(`invalid target ${describe(input)}: tls must be a boolean or TLS options`);
  }
  if (scheme !== undefined && typeof scheme !== "string") {
    throw new ConfigError(`invalid target ${describe(input)}: scheme must be a string`);
  }
  return build(checkHost(host, input), checkPort(port, input), {
    scheme,
    tls: tls === false ? undefined : tls,
    meta,
  });
}

function isParsed(t: object): boolean {
  const { host, port, tls } = t as Record<string, unknown>;
  return typeof host === "string" && host !== "" && !BAD_HOST_CHARS.test(host) && !host.includes("[") &&
    typeof port === "number" &&
    Number.isInteger(port) && port >= 0 && port <= 65535 &&
    (tls === undefined || (typeof tls === "object" && tls !== null && Object.isFrozen(tls)));
}

/** Formats a target back to text: `"host:port"`, `"[::1]:5432"`, or `"https://host:port"`. */
export function formatTarget(t: Target): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return t.scheme !== undefined ? `${t.scheme}://${host}:${t.port}` : `${host}:${t.port}`;
}
