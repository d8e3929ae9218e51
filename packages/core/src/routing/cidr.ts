/**
 * IP addresses and CIDR ranges.
 *
 * Every address is parsed once into a 128-bit `bigint` in IPv6 space; an IPv4 address is stored
 * as its IPv4-mapped form (`::ffff:a.b.c.d`). So `"10.0.0.1"`, `"::ffff:10.0.0.1"` and
 * `"::ffff:a00:1"` are the same value, and an IPv4 CIDR `10.0.0.0/8` is the IPv6 range
 * `::ffff:10.0.0.0/104`.
 */
import { ConfigError } from "../errors.js";

const MAPPED_PREFIX = 0xffffn << 32n;
const MAPPED_MASK = ~0xffff_ffffn & ((1n << 128n) - 1n);
const ALL_ONES = (1n << 128n) - 1n;

/** Parses a dotted-quad IPv4 address to a 32-bit number; rejects leading zeros (octal-looking). */
export function parseIpv4(text: string): number | undefined {
  let value = 0;
  let parts = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text.charCodeAt(i) !== 46 /* . */) continue;
    const len = i - start;
    if (len < 1 || len > 3 || parts === 4) return undefined;
    let octet = 0;
    for (let j = start; j < i; j++) {
      const c = text.charCodeAt(j) - 48;
      if (c < 0 || c > 9) return undefined;
      octet = octet * 10 + c;
    }
    if (octet > 255 || (len > 1 && text.charCodeAt(start) === 48)) return undefined;
    value = value * 256 + octet;
    parts++;
    start = i + 1;
  }
  return parts === 4 ? value : undefined;
}

function parseHexGroups(text: string, out: number[]): boolean {
  if (text === "") return true;
  const groups = text.split(":");
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] as string;
    if (i === groups.length - 1 && g.includes(".")) {
      const v4 = parseIpv4(g);
      if (v4 === undefined) return false;
      out.push(v4 >>> 16, v4 & 0xffff);
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
    out.push(parseInt(g, 16));
  }
  return true;
}

/** Parses an IPv6 address (with `::`, an embedded dotted IPv4 tail) to a 128-bit bigint. */
export function parseIpv6(text: string): bigint | undefined {
  const dbl = text.indexOf("::");
  const head: number[] = [];
  const tail: number[] = [];
  if (dbl < 0) {
    if (!parseHexGroups(text, head) || head.length !== 8) return undefined;
  } else {
    if (text.indexOf("::", dbl + 1) >= 0) return undefined;
    const left = text.slice(0, dbl);
    const right = text.slice(dbl + 2);
    // a dotted IPv4 part may only end the address
    if (left.includes(".")) return undefined;
    if (!parseHexGroups(left, head) || !parseHexGroups(right, tail)) return undefined;
    if (head.length + tail.length > 7) return undefined;
    while (head.length + tail.length < 8) head.push(0);
  }
  let value = 0n;
  for (const g of head) value = (value << 16n) | BigInt(g);
  for (const g of tail) value = (value << 16n) | BigInt(g);
  return value;
}

function stripDecorations(ip: string): string {
  let s = ip.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  return s;
}

/**
 * Parses an IPv4 or IPv6 address to a 128-bit value (IPv4 as IPv4-mapped IPv6). Brackets and
 * IPv6 zone ids (`fe80::1%eth0`) are ignored. Returns undefined for anything else.
 */
export function parseIp(ip: string): bigint | undefined {
  const s = stripDecorations(ip);
  if (s.includes(":")) return parseIpv6(s);
  const v4 = parseIpv4(s);
  return v4 === undefined ? undefined : MAPPED_PREFIX | BigInt(v4);
}

/** True when a 128-bit value is an IPv4-mapped address (`::ffff:0:0/96`). */
export function isMappedIpv4(value: bigint): boolean {
  return (value & MAPPED_MASK) === MAPPED_PREFIX;
}

/** The IPv4-mapped 128-bit value of a 32-bit IPv4 address. */
export function mapIpv4(v4: number | bigint): bigint {
  return MAPPED_PREFIX | (BigInt(v4) & 0xffff_ffffn);
}

/** Formats a 128-bit value: dotted quad for IPv4-mapped values, RFC 5952 text otherwise. */
export function formatIp(value: bigint): string {
  if (isMappedIpv4(value)) {
    const v = Number(value & 0xffff_ffffn);
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // longest run of zero groups (length >= 2) becomes "::"
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/**
 * Normalises an address as it comes from a socket: strips brackets and the zone id, lowercases,
 * and turns an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, `::ffff:a00:1`) into its IPv4 form.
 * Anything that does not parse as an IP is returned trimmed, unchanged otherwise.
 */
export function normalizeIp(ip: string): string {
  const s = stripDecorations(ip);
  if (!s.includes(":")) return s;
  const value = parseIpv6(s);
  if (value !== undefined && isMappedIpv4(value)) return formatIp(value);
  return s.toLowerCase();
}

/** One parsed CIDR range in 128-bit space. */
export interface IpRange {
  readonly network: bigint;
  readonly mask: bigint;
  /** prefix length in 128-bit space (an IPv4 /8 is 104) */
  readonly prefix: number;
  /** the text it was parsed from */
  readonly source: string;
}

/** Parses "10.0.0.0/8", "fc00::/7", "::ffff:10.0.0.0/104" or a lone address (a /32 or /128). */
export function parseCidr(text: string): IpRange {
  if (typeof text !== "string") throw new ConfigError(`invalid CIDR: ${String(text)}`);
  const slash = text.indexOf("/");
  const addr = (slash < 0 ? text : text.slice(0, slash)).trim();
  const value = parseIp(addr);
  if (value === undefined) throw new ConfigError(`invalid CIDR "${text}": "${addr}" is not an IP address`);
  const v4 = !stripDecorations(addr).includes(":");
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      throw new ConfigError(`invalid CIDR "${text}": prefix length must be an integer 0-${max}`);
    }
    bits = Number(p);
  }
  const prefix = v4 ? bits + 96 : bits;
  const mask = prefix === 0 ? 0n : (ALL_ONES << BigInt(128 - prefix)) & ALL_ONES;
  return Object.freeze({ network: value & mask, mask, prefix, source: text });
}

/**
 * Matches addresses against a list of IPs and CIDRs, parsed once. IPv4 and IPv4-mapped IPv6
 * are the same address. `score` (the narrowest prefix in the list, in 128-bit terms) helps
 * order routes: a /32 outranks a /8.
 */
export class IpMatcher {
  readonly ranges: readonly IpRange[];
  constructor(list: string | readonly string[]) {
    const items = typeof list === "string" ? [list] : list;
    if (!Array.isArray(items) || items.length === 0) {
      throw new ConfigError("an IP list needs at least one address or CIDR");
    }
    this.ranges = Object.freeze(items.map(parseCidr));
  }

  /** the widest prefix length in the list (the least specific entry), 0-128 */
  get minPrefix(): number {
    let min = 128;
    for (const r of this.ranges) if (r.prefix < min) min = r.prefix;
    return min;
  }

  /** true when `ip` is inside one of the ranges; false for anything that is not an IP */
  matches(ip: string): boolean {
    const value = parseIp(ip);
    return value !== undefined && this.matchesValue(value);
  }

  /** same as `matches` for an address already parsed with `parseIp` */
  matchesValue(value: bigint): boolean {
    for (const r of this.ranges) if ((value & r.mask) === r.network) return true;
    return false;
  }
}
