/**
 * SSRF guard: address ranges a target from a dynamic resolver must not point at.
 *
 * Call it with resolved addresses (after DNS), not host names. Addresses that embed an IPv4
 * address are judged by that IPv4 address: IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`
 * and 6to4 `2002::/16`.
 */
import { IpMatcher, isMappedIpv4, mapIpv4, parseIp } from "../routing/cidr.js";

/** IPv4 ranges refused by default, with why. */
export const REFUSED_IPV4_RANGES: Readonly<Record<string, string>> = Object.freeze({
  "0.0.0.0/8": "unspecified / this network",
  "10.0.0.0/8": "private",
  "100.64.0.0/10": "carrier-grade NAT",
  "127.0.0.0/8": "loopback",
  "169.254.0.0/16": "link-local (cloud metadata 169.254.169.254)",
  "172.16.0.0/12": "private",
  "192.0.0.0/24": "IETF protocol assignments",
  "192.0.2.0/24": "documentation (TEST-NET-1)",
  "192.88.99.0/24": "6to4 relay anycast (deprecated)",
  "192.168.0.0/16": "private",
  "198.18.0.0/15": "benchmarking",
  "198.51.100.0/24": "documentation (TEST-NET-2)",
  "203.0.113.0/24": "documentation (TEST-NET-3)",
  "224.0.0.0/4": "multicast",
  "240.0.0.0/4": "reserved, including broadcast 255.255.255.255",
});

/** IPv6 ranges refused by default, with why. */
export const REFUSED_IPV6_RANGES: Readonly<Record<string, string>> = Object.freeze({
  "::/96": "unspecified, loopback and deprecated IPv4-compatible addresses",
  "64:ff9b:1::/48": "local-use NAT64",
  "100::/64": "discard-only",
  "2001:db8::/32": "documentation",
  "fc00::/7": "unique local (private)",
  "fe80::/10": "link-local",
  "fec0::/10": "site-local (deprecated)",
  "ff00::/8": "multicast",
});

const REFUSED = new IpMatcher([...Object.keys(REFUSED_IPV4_RANGES), ...Object.keys(REFUSED_IPV6_RANGES)]);

const NAT64 = parseIp("64:ff9b::") as bigint;
const NAT64_MASK = ((1n << 96n) - 1n) << 32n;
const SIX_TO_FOUR = 0x2002n << 112n;
const SIX_TO_FOUR_MASK = 0xffffn << 112n;

/**
 * The IPv4 address (as an IPv4-mapped value) an IPv6 address stands for, if any: itself when
 * IPv4-mapped, the low 32 bits of NAT64 `64:ff9b::/96`, bits 16-47 of 6to4 `2002::/16`.
 */
export function embeddedIpv4(value: bigint): bigint | undefined {
  if (isMappedIpv4(value)) return value;
  if ((value & NAT64_MASK) === NAT64) return mapIpv4(value & 0xffff_ffffn);
  if ((value & SIX_TO_FOUR_MASK) === SIX_TO_FOUR) return mapIpv4((value >> 80n) & 0xffff_ffffn);
  return undefined;
}

/**
 * True when `ip` must not be dialled: loopback, private, link-local (incl. the cloud metadata
 * address), unspecified, CGNAT, multicast, broadcast, reserved and documentation ranges, in
 * IPv4 and IPv6, with embedded IPv4 judged as IPv4. Something that is not an IP address is
 * refused. `allow` lets chosen addresses through; it is checked against the address as given
 * and against the IPv4 address it embeds.
 */
export function isRefusedAddress(ip: string, allow?: IpMatcher): boolean {
  const value = parseIp(ip);
  if (value === undefined) return true;
  if (allow?.matchesValue(value)) return false;
  const v4 = embeddedIpv4(value);
  if (v4 === undefined) return REFUSED.matchesValue(value);
  if (allow?.matchesValue(v4)) return false;
  return REFUSED.matchesValue(v4);
}
