import { isIP } from "node:net";
import { ConfigError } from "@switchyard/core";

/**
 * A small CIDR matcher for `trustedProxies` (IPv4, IPv6, IPv4-mapped IPv6 treated as IPv4).
 * Kept local until core exports its IpMatcher from the package entry.
 */
interface Range {
  network: bigint;
  mask: bigint;
}

const ALL = (1n << 128n) - 1n;
const MAPPED = 0xffffn << 32n;

function v4ToBig(ip: string): bigint {
  let v = 0n;
  for (const part of ip.split(".")) v = (v << 8n) | BigInt(Number(part));
  return MAPPED | v;
}

function v6ToBig(ip: string): bigint {
  let text = ip;
  let tail: bigint | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tail = v4ToBig(text.slice(lastColon + 1)) & 0xffff_ffffn;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const [head = "", rest] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = rest !== undefined && rest !== "" ? rest.split(":") : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  if (tail !== undefined) v = (v & ~0xffff_ffffn) | tail;
  return v;
}

/** Parses an address (brackets and zone id allowed) to 128 bits, or undefined. */
export function ipToBigInt(raw: string): bigint | undefined {
  let ip = raw.trim();
  if (ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
  const zone = ip.indexOf("%");
  if (zone >= 0) ip = ip.slice(0, zone);
  const family = isIP(ip);
  if (family === 4) return v4ToBig(ip);
  if (family === 6) return v6ToBig(ip);
  return undefined;
}

export class CidrList {
  readonly #ranges: Range[];
  constructor(list: readonly string[]) {
    this.#ranges = list.map((entry) => {
      const slash = entry.indexOf("/");
      const addr = slash < 0 ? entry : entry.slice(0, slash);
      const value = ipToBigInt(addr);
      if (value === undefined) throw new ConfigError(`trustedProxies: "${entry}" is not an IP or CIDR`);
      const v4 = isIP(addr.trim()) === 4;
      const max = v4 ? 32 : 128;
      const bitsText = slash < 0 ? String(max) : entry.slice(slash + 1).trim();
      const bits = Number(bitsText);
      if (!/^\d{1,3}$/.test(bitsText) || bits > max) {
        throw new ConfigError(`trustedProxies: "${entry}" has an invalid prefix length`);
      }
      const prefix = v4 ? bits + 96 : bits;
      const mask = prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL;
      return { network: value & mask, mask };
    });
  }

  get size(): number {
    return this.#ranges.length;
  }

  matches(ip: string): boolean {
    if (this.#ranges.length === 0) return false;
    const v = ipToBigInt(ip);
    if (v === undefined) return false;
    return this.#ranges.some((r) => (v & r.mask) === r.network);
  }
}
