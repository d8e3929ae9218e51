import { isIP } from "node:net";

/** RFC 9110 tchar: what may appear in a token without quotes. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A value as an RFC 7239 token, or a quoted-string when it has other characters. */
export function quoteIfNeeded(value: string): string {
  if (TOKEN.test(value)) return value;
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * An RFC 7239 node (`for=` / `by=` value): IPv6 addresses go in brackets, and anything with a
 * colon (IPv6, or a port) is a quoted-string. An absent address is `unknown`; obfuscated
 * identifiers (`_hidden`) pass as tokens.
 */
export function formatNode(ip: string | undefined, port?: number): string {
  if (ip === undefined || ip === "") return "unknown";
  const bare = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  const host = isIP(bare) === 6 ? `[${bare}]` : bare;
  return quoteIfNeeded(port !== undefined ? `${host}:${port}` : host);
}

export interface ForwardedElement {
  /** the client address (`for=`) */
  for?: string | undefined;
  /** the client port, written as part of `for=` when given */
  forPort?: number | undefined;
  /** the interface of this proxy that received the request (`by=`) */
  by?: string | undefined;
  /** the Host the client asked for */
  host?: string | undefined;
  /** "http" or "https" */
  proto?: string | undefined;
}

/** One forwarded-element: `for=...;by=...;host=...;proto=...` (parameters that are set). */
export function formatForwarded(el: ForwardedElement): string {
  const parts = [`for=${formatNode(el.for, el.forPort)}`];
  if (el.by !== undefined) parts.push(`by=${formatNode(el.by)}`);
  if (el.host !== undefined && el.host !== "") parts.push(`host=${quoteIfNeeded(el.host)}`);
  if (el.proto !== undefined) parts.push(`proto=${quoteIfNeeded(el.proto)}`);
  return parts.join(";");
}

/**
 * The new Forwarded value: the existing elements plus ours when the peer is trusted,
 * otherwise ours alone (a client cannot inject hops).
 */
export function appendForwarded(existing: readonly string[], element: string, peerTrusted: boolean): string {
  const prior = existing.map((v) => v.trim()).filter((v) => v.length > 0);
  if (peerTrusted && prior.length > 0) return `${prior.join(", ")}, ${element}`;
  return element;
}
