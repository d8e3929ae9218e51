import { isIP } from "node:net";

const DEFAULT_PORT: Readonly<Record<string, number>> = { http: 80, https: 443, ws: 80, wss: 443 };

/**
 * The Host value for a target: IPv6 in brackets, and `:port` unless the port is the scheme's
 * default (80 for http, 443 for https).
 */
export function formatHostHeader(host: string, port: number | undefined, scheme: string): string {
  const h = isIP(host) === 6 ? `[${host}]` : host;
  if (port === undefined || DEFAULT_PORT[scheme.toLowerCase()] === port) return h;
  return `${h}:${port}`;
}

/** The scheme a target is reached with: its URL scheme, else https when it originates TLS. */
export function targetScheme(target: { scheme?: string | undefined; tls?: unknown }): string {
  if (target.scheme) return target.scheme;
  return target.tls ? "https" : "http";
}

/** Splits a Host header into name and port ("[::1]:8080" → "::1", 8080). */
export function splitHost(value: string): { host: string; port: number | undefined } {
  const v = value.trim();
  if (v.startsWith("[")) {
    const end = v.indexOf("]");
    const host = v.slice(1, end < 0 ? undefined : end);
    const rest = end < 0 ? "" : v.slice(end + 1);
    return { host, port: rest.startsWith(":") && /^\d+$/.test(rest.slice(1)) ? Number(rest.slice(1)) : undefined };
  }
  const colon = v.lastIndexOf(":");
  if (colon >= 0 && v.indexOf(":") === colon && /^\d+$/.test(v.slice(colon + 1))) {
    return { host: v.slice(0, colon), port: Number(v.slice(colon + 1)) };
  }
  return { host: v, port: undefined };
}
