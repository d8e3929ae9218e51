/**
 * The PROXY protocol (haproxy's proxy-protocol.txt), versions 1 (text) and 2 (binary, with TLVs):
 * a pure parser that works on the bytes received so far, and encoders for both versions.
 *
 * The parser never buffers on its own: it is handed what the caller accumulated and answers
 * "need more", "done" (with how many bytes the header took) or throws `ProxyHeaderError`. A
 * header announcing more than `maxLength` bytes is refused as soon as its length is known.
 * No other exception leaves this module for any input.
 */
import { ProxyError } from "./errors.js";
import { formatIp, isMappedIpv4, parseIp } from "./routing/cidr.js";

/** A PROXY header that is malformed, too long, or not a PROXY header at all. */
export class ProxyHeaderError extends ProxyError {
  override name = "ProxyHeaderError";
  constructor(message: string) {
    super("PRX_ERR_PROXY_HEADER", message);
  }
}

/** The 12-byte signature that starts a version 2 header. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from("PROXY ", "latin1");
/** Longest version 1 line, CRLF included (the spec's 107 bytes). */
export const PROXY_V1_MAX_LENGTH = 107;
/** Default bound on a version 2 header, TLVs included (the format allows 16 + 65535). */
export const PROXY_HEADER_DEFAULT_LIMIT = 4096;

/** TLV types of version 2 that this module knows by name. */
export const ProxyTlv = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export interface ProxyTlvEntry {
  readonly type: number;
  readonly value: Buffer;
}

/** What a header says. Addresses are absent for LOCAL, UNKNOWN, UNSPEC and UNIX headers. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** LOCAL: the sender's own connection (health check); the real peer address applies */
  readonly command: "PROXY" | "LOCAL";
  /** "TCP4" / "TCP6" (v1 and v2 stream), "UDP4" / "UDP6", "UNIX", "UNKNOWN" */
  readonly family: "TCP4" | "TCP6" | "UDP4" | "UDP6" | "UNIX" | "UNIX-DGRAM" | "UNKNOWN";
  readonly source?: ProxyAddress;
  readonly destination?: ProxyAddress;
  /** version 2 TLVs in order (empty for version 1) */
  readonly tlvs: readonly ProxyTlvEntry[];
  /** PP2_TYPE_AUTHORITY (the host name the client asked for, usually its SNI) */
  readonly authority?: string;
  /** PP2_TYPE_ALPN */
  readonly alpn?: string;
}

export type ProxyHeaderParse =
  | { readonly state: "partial" }
  | { readonly state: "done"; readonly header: ProxyHeader; readonly length: number };

const PARTIAL: ProxyHeaderParse = Object.freeze({ state: "partial" });

/**
 * Reads a PROXY header (v1 or v2) from the start of `data`, the bytes received so far.
 * `partial`: every byte so far fits a header, more are needed. Throws ProxyHeaderError when the
 * bytes cannot start a header, the header is malformed, or it is longer than `maxLength`.
 */
export function parseProxyHeader(data: Uint8Array, maxLength = PROXY_HEADER_DEFAULT_LIMIT): ProxyHeaderParse {
  if (data.length === 0) return PARTIAL;
  if (data[0] === PROXY_V2_SIGNATURE[0]) {
    if (!prefixMatches(data, PROXY_V2_SIGNATURE)) throw new ProxyHeaderError("not a PROXY protocol header");
    return data.length < 16 ? PARTIAL : parseV2(data, maxLength);
  }
  if (!prefixMatches(data, V1_PREFIX)) throw new ProxyHeaderError("not a PROXY protocol header");
  return data.length < V1_PREFIX.length ? PARTIAL : parseV1(data, Math.min(maxLength, PROXY_V1_MAX_LENGTH));
}

function prefixMatches(data: Uint8Array, signature: Buffer): boolean {
  const n = Math.min(data.length, signature.length);
  for (let i = 0; i < n; i++) if (data[i] !== signature[i]) return false;
  return true;
}

// ---- version 1 ----------------------------------------------------------------------------

function parseV1(data: Uint8Array, maxLength: number): ProxyHeaderParse {
  let cr = -1;
  // the line is cr + 2 bytes long: a CR past maxLength - 2 would make it too long
  const end = Math.min(data.length, maxLength - 1);
  for (let i = V1_PREFIX.length; i < end; i++) {
    const c = data[i]!;
    if (c === 0x0d) {
      cr = i;
      break;
    }
    // printable ASCII only: anything else cannot be a v1 header
    if (c < 0x20 || c > 0x7e) throw new ProxyHeaderError("PROXY v1: invalid character in header");
  }
  if (cr < 0) {
    if (data.length >= maxLength - 1) throw new ProxyHeaderError(`PROXY v1: no CRLF within ${maxLength} bytes`);
    return PARTIAL;
  }
  if (cr + 1 >= data.length) return PARTIAL;
  if (data[cr + 1] !== 0x0a) throw new ProxyHeaderError("PROXY v1: CR not followed by LF");
  const line = Buffer.from(data.buffer, data.byteOffset + V1_PREFIX.length, cr - V1_PREFIX.length).toString("latin1");
  const length = cr + 2;
  const parts = line.split(" ");
  const family = parts[0];
  if (family === "UNKNOWN") {
    // the rest of the line is to be ignored
    return { state: "done", length, header: { version: 1, command: "PROXY", family: "UNKNOWN", tlvs: [] } };
  }
  if (family !== "TCP4" && family !== "TCP6") throw new ProxyHeaderError(`PROXY v1: unknown protocol "${family ?? ""}"`);
  if (parts.length !== 5) throw new ProxyHeaderError("PROXY v1: expected 4 fields after the protocol");
  const src = v1Address(parts[1]!, family);
  const dst = v1Address(parts[2]!, family);
  const header: ProxyHeader = {
    version: 1,
    command: "PROXY",
    family,
    source: { address: src, port: v1Port(parts[3]!) },
    destination: { address: dst, port: v1Port(parts[4]!) },
    tlvs: [],
  };
  return { state: "done", length, header };
}

function v1Address(text: string, family: "TCP4" | "TCP6"): string {
  const value = text.length > 0 && text.length <= 45 ? parseIp(text) : undefined;
  const v4 = !text.includes(":");
  if (value === undefined || v4 !== (family === "TCP4") || text.includes("%") || text.includes("[")) {
    throw new ProxyHeaderError(`PROXY v1: invalid ${family} address "${text.slice(0, 45)}"`);
  }
  // an IPv4-mapped TCP6 address stays IPv6 text here; Connection normalises what it shows
  return v4 ? formatIp(value) : formatIpv6(value);
}

function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 65535) throw new ProxyHeaderError(`PROXY v1: invalid port "${text.slice(0, 8)}"`);
  return Number(text);
}

// ---- version 2 ----------------------------------------------------------------------------

const ADDRESS_LENGTH: Readonly<Record<number, number>> = { 0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216 };

function parseV2(data: Uint8Array, maxLength: number): ProxyHeaderParse {
  const verCmd = data[12]!;
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError(`PROXY v2: unsupported version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyHeaderError(`PROXY v2: unknown command ${cmd}`);
  const famByte = data[13]!;
  const af = famByte >> 4;
  const proto = famByte & 0x0f;
  const addressLength = ADDRESS_LENGTH[af];
  if (addressLength === undefined) throw new ProxyHeaderError(`PROXY v2: unknown address family ${af}`);
  if (proto > 2) throw new ProxyHeaderError(`PROXY v2: unknown transport ${proto}`);
  const bodyLength = (data[14]! << 8) | data[15]!;
  const length = 16 + bodyLength;
  if (length > maxLength) throw new ProxyHeaderError(`PROXY v2: header of ${length} bytes exceeds the limit of ${maxLength}`);
  if (data.length < length) return PARTIAL;
  const local = cmd === 0;
  if (!local && bodyLength < addressLength) throw new ProxyHeaderError("PROXY v2: address block shorter than its family needs");
  const buf = Buffer.from(data.buffer, data.byteOffset, length);
  // LOCAL: the address block is to be ignored, whatever its family says; TLVs may follow it
  const tlvStart = 16 + Math.min(addressLength, bodyLength);
  const tlvs = parseTlvs(buf, tlvStart, length);
  let family: ProxyHeader["family"] = "UNKNOWN";
  let source: ProxyAddress | undefined;
  let destination: ProxyAddress | undefined;
  if (!local && proto !== 0) {
    if (af === 0x1) {
      family = proto === 1 ? "TCP4" : "UDP4";
      source = { address: formatIp(ipv4At(buf, 16)), port: buf.readUInt16BE(24) };
      destination = { address: formatIp(ipv4At(buf, 20)), port: buf.readUInt16BE(26) };
    } else if (af === 0x2) {
      family = proto === 1 ? "TCP6" : "UDP6";
      source = { address: formatIpv6(ipv6At(buf, 16)), port: buf.readUInt16BE(48) };
      destination = { address: formatIpv6(ipv6At(buf, 32)), port: buf.readUInt16BE(50) };
    } else if (af === 0x3) {
      family = proto === 1 ? "UNIX" : "UNIX-DGRAM";
    }
  }
  let authority: string | undefined;
  let alpn: string | undefined;
  for (const t of tlvs) {
    if (t.type === ProxyTlv.AUTHORITY) authority = utf8(t.value, "AUTHORITY");
    else if (t.type === ProxyTlv.ALPN) alpn = t.value.toString("latin1");
  }
  const header: ProxyHeader = {
    version: 2,
    command: local ? "LOCAL" : "PROXY",
    family,
    ...(source ? { source } : {}),
    ...(destination ? { destination } : {}),
    tlvs,
    ...(authority !== undefined ? { authority } : {}),
    ...(alpn !== undefined ? { alpn } : {}),
  };
  return { state: "done", length, header };
}

function parseTlvs(buf: Buffer, start: number, end: number): ProxyTlvEntry[] {
  const out: ProxyTlvEntry[] = [];
  let crcAt = -1;
  let at = start;
  while (at < end) {
    if (end - at < 3) throw new ProxyHeaderError("PROXY v2: truncated TLV");
    const type = buf[at]!;
    const len = buf.readUInt16BE(at + 1);
    if (at + 3 + len > end) throw new ProxyHeaderError(`PROXY v2: TLV 0x${type.toString(16)} overruns the header`);
    // a copy: the caller's buffer is the socket's, and may be reused
    out.push({ type, value: Buffer.from(buf.subarray(at + 3, at + 3 + len)) });
    if (type === ProxyTlv.CRC32C) {
      if (crcAt >= 0) throw new ProxyHeaderError("PROXY v2: more than one CRC32C TLV");
      crcAt = at + 3;
    }
    at += 3 + len;
  }
  if (crcAt >= 0) checkCrc(buf, crcAt);
  return out;
}

function utf8(value: Buffer, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(value);
  } catch {
    throw new ProxyHeaderError(`PROXY v2: ${what} TLV is not UTF-8`);
  }
}

function checkCrc(header: Buffer, valueAt: number): void {
  if (valueAt + 4 > header.length || header.readUInt16BE(valueAt - 2) !== 4) throw new ProxyHeaderError("PROXY v2: CRC32C TLV must hold 4 bytes");
  const expected = header.readUInt32BE(valueAt);
  // the checksum covers the whole header with the checksum field itself zeroed
  const copy = Buffer.from(header);
  copy.fill(0, valueAt, valueAt + 4);
  if (crc32c(copy) !== expected) throw new ProxyHeaderError("PROXY v2: CRC32C mismatch");
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as the PP2_TYPE_CRC32C TLV carries it. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function ipv4At(buf: Buffer, at: number): bigint {
  return (0xffffn << 32n) | BigInt(buf.readUInt32BE(at));
}

function ipv6At(buf: Buffer, at: number): bigint {
  return (buf.readBigUInt64BE(at) << 64n) | buf.readBigUInt64BE(at + 8);
}

/** RFC 5952 text of a 128-bit address, IPv4-mapped ones as `::ffff:a.b.c.d`. */
function formatIpv6(value: bigint): string {
  return isMappedIpv4(value) ? `::ffff:${formatIp(value)}` : formatIp(value);
}

// ---- encoding -----------------------------------------------------------------------------

/** What an encoder needs: the client's address and the address it connected to. */
export interface ProxyHeaderInput {
  source: ProxyAddress;
  destination: ProxyAddress;
  /** v2 only: PP2_TYPE_AUTHORITY (the SNI, when known) */
  authority?: string | undefined;
  /** v2 only: PP2_TYPE_ALPN */
  alpn?: string | undefined;
  /** v2 only: PP2_TYPE_SSL, for a client connection whose TLS the proxy terminated */
  ssl?: ProxySslInfo | undefined;
}

/** What PP2_TYPE_SSL says of the client's TLS (HAProxy's `send-proxy-v2-ssl` / `-ssl-cn`). */
export interface ProxySslInfo {
  /** "TLSv1.3" (PP2_SUBTYPE_SSL_VERSION) */
  version?: string | undefined;
  /** OpenSSL cipher name (PP2_SUBTYPE_SSL_CIPHER) */
  cipher?: string | undefined;
  /** the client certificate's common name (PP2_SUBTYPE_SSL_CN); its presence sets PP2_CLIENT_CERT_CONN */
  cn?: string | undefined;
  /** the client sent a certificate */
  clientCert: boolean;
  /** the client certificate verified (the `verify` field is 0 only then) */
  verified: boolean;
}

/** PP2_TYPE_SSL: client flags, verify result, then the sub-TLVs given. */
function sslTlv(ssl: ProxySslInfo): Buffer {
  const subs: Buffer[] = [];
  if (ssl.version) subs.push(tlv(0x21, Buffer.from(ssl.version, "latin1")));
  if (ssl.cn !== undefined) subs.push(tlv(0x22, Buffer.from(ssl.cn, "utf8")));
  if (ssl.cipher) subs.push(tlv(0x23, Buffer.from(ssl.cipher, "latin1")));
  const head = Buffer.alloc(5);
  // PP2_CLIENT_SSL, and PP2_CLIENT_CERT_CONN when a certificate came on this connection
  head[0] = 0x01 | (ssl.clientCert ? 0x02 : 0);
  head.writeUInt32BE(ssl.clientCert && ssl.verified ? 0 : 1, 1);
  return tlv(ProxyTlv.SSL, Buffer.concat([head, ...subs]));
}

interface Pair {
  v6: boolean;
  src: bigint;
  dst: bigint;
}

/** Both addresses in one family: IPv4 when both are IPv4, otherwise both IPv6 (v4 mapped). */
function addressPair(input: ProxyHeaderInput): Pair | undefined {
  const src = parseIp(input.source.address);
  const dst = parseIp(input.destination.address);
  if (src === undefined || dst === undefined) return undefined;
  return { v6: !(isMappedIpv4(src) && isMappedIpv4(dst)), src, dst };
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 65535;
}

/**
 * A version 1 line. Addresses that are not IPs (or ports out of range) give
 * `PROXY UNKNOWN\r\n`, which tells the receiver to use the connection's own addresses.
 */
export function encodeProxyHeaderV1(input: ProxyHeaderInput): Buffer {
  const pair = addressPair(input);
  if (!pair || !validPort(input.source.port) || !validPort(input.destination.port)) return Buffer.from("PROXY UNKNOWN\r\n", "latin1");
  const text = (v: bigint) => (pair.v6 ? formatIpv6(v) : formatIp(v));
  return Buffer.from(`PROXY ${pair.v6 ? "TCP6" : "TCP4"} ${text(pair.src)} ${text(pair.dst)} ${input.source.port} ${input.destination.port}\r\n`, "latin1");
}

/**
 * A version 2 header, command PROXY over TCP, with the AUTHORITY, ALPN and SSL TLVs when given.
 * Addresses that are not IPs give family UNSPEC (the receiver uses the connection's own).
 */
export function encodeProxyHeaderV2(input: ProxyHeaderInput): Buffer {
  const tlvs: Buffer[] = [];
  if (input.alpn) tlvs.push(tlv(ProxyTlv.ALPN, Buffer.from(input.alpn, "latin1")));
  if (input.authority) tlvs.push(tlv(ProxyTlv.AUTHORITY, Buffer.from(input.authority, "utf8")));
  if (input.ssl) tlvs.push(sslTlv(input.ssl));
  return encodeV2("PROXY", input, tlvs);
}

/** A version 2 LOCAL header (health checks: no client behind this connection). */
export function encodeProxyHeaderV2Local(): Buffer {
  return encodeV2("LOCAL", undefined, []);
}

function tlv(type: number, value: Buffer): Buffer {
  const len = Math.min(value.length, 0xffff);
  const out = Buffer.allocUnsafe(3 + len);
  out[0] = type;
  out.writeUInt16BE(len, 1);
  value.copy(out, 3, 0, len);
  return out;
}

function encodeV2(command: "PROXY" | "LOCAL", input: ProxyHeaderInput | undefined, tlvs: Buffer[]): Buffer {
  const pair = input && validPort(input.source.port) && validPort(input.destination.port) ? addressPair(input) : undefined;
  const addressLength = pair === undefined ? 0 : pair.v6 ? 36 : 12;
  let tlvLength = 0;
  for (const t of tlvs) tlvLength += t.length;
  // the whole header must fit the 16-bit length: drop TLVs that would overflow it
  while (addressLength + tlvLength > 0xffff && tlvs.length > 0) tlvLength -= tlvs.pop()!.length;
  const out = Buffer.alloc(16 + addressLength + tlvLength);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = command === "LOCAL" ? 0x20 : 0x21;
  out[13] = pair === undefined ? 0x00 : pair.v6 ? 0x21 : 0x11;
  out.writeUInt16BE(addressLength + tlvLength, 14);
  if (pair && input) {
    if (pair.v6) {
      writeIpv6(out, 16, pair.src);
      writeIpv6(out, 32, pair.dst);
      out.writeUInt16BE(input.source.port, 48);
      out.writeUInt16BE(input.destination.port, 50);
    } else {
      out.writeUInt32BE(Number(pair.src & 0xffff_ffffn), 16);
      out.writeUInt32BE(Number(pair.dst & 0xffff_ffffn), 20);
      out.writeUInt16BE(input.source.port, 24);
      out.writeUInt16BE(input.destination.port, 26);
    }
  }
  let at = 16 + addressLength;
  for (const t of tlvs) {
    t.copy(out, at);
    at += t.length;
  }
  return out;
}

function writeIpv6(out: Buffer, at: number, value: bigint): void {
  out.writeBigUInt64BE(value >> 64n, at);
  out.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, at + 8);
}
