import { strictUtf8 } from "./internal/utf8.js";

/**
 * MySQL / MariaDB wire formats of the connection phase (client/server protocol): packets,
 * Protocol::HandshakeV10, HandshakeResponse41 and its SSLRequest prefix, AuthSwitchRequest,
 * ERR. Pure functions over buffers: a parser never throws, it answers `invalid`.
 */

/** Capability flags (CLIENT_*) the proxy reads or offers. */
export const Cap = {
  LONG_PASSWORD: 1,
  FOUND_ROWS: 1 << 1,
  LONG_FLAG: 1 << 2,
  CONNECT_WITH_DB: 1 << 3,
  NO_SCHEMA: 1 << 4,
  COMPRESS: 1 << 5,
  ODBC: 1 << 6,
  LOCAL_FILES: 1 << 7,
  IGNORE_SPACE: 1 << 8,
  PROTOCOL_41: 1 << 9,
  INTERACTIVE: 1 << 10,
  SSL: 1 << 11,
  IGNORE_SIGPIPE: 1 << 12,
  TRANSACTIONS: 1 << 13,
  RESERVED: 1 << 14,
  SECURE_CONNECTION: 1 << 15,
  MULTI_STATEMENTS: 1 << 16,
  MULTI_RESULTS: 1 << 17,
  PS_MULTI_RESULTS: 1 << 18,
  PLUGIN_AUTH: 1 << 19,
  CONNECT_ATTRS: 1 << 20,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 1 << 21,
  CAN_HANDLE_EXPIRED_PASSWORDS: 1 << 22,
  SESSION_TRACK: 1 << 23,
  DEPRECATE_EOF: 1 << 24,
  OPTIONAL_RESULTSET_METADATA: 1 << 25,
  ZSTD_COMPRESSION: 1 << 26,
  QUERY_ATTRIBUTES: 1 << 27,
} as const;

/** What the proxy's greeting offers by default: what MySQL ≥ 5.7 and MariaDB ≥ 10.2 both speak. */
export const DEFAULT_CAPABILITIES =
  Cap.LONG_PASSWORD | Cap.FOUND_ROWS | Cap.LONG_FLAG | Cap.CONNECT_WITH_DB | Cap.ODBC | Cap.LOCAL_FILES |
  Cap.IGNORE_SPACE | Cap.PROTOCOL_41 | Cap.INTERACTIVE | Cap.IGNORE_SIGPIPE | Cap.TRANSACTIONS |
  Cap.RESERVED | Cap.SECURE_CONNECTION | Cap.MULTI_STATEMENTS | Cap.MULTI_RESULTS | Cap.PS_MULTI_RESULTS |
  Cap.PLUGIN_AUTH | Cap.CONNECT_ATTRS | Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA | Cap.CAN_HANDLE_EXPIRED_PASSWORDS |
  Cap.SESSION_TRACK | Cap.DEPRECATE_EOF;

/**
 * Flags that change what the command phase looks like: a client that chose one must have a
 * backend that speaks it, or results would be misread (ProxySQL's DEPRECATE_EOF mismatch).
 */
export const MUST_AGREE =
  Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.LONG_FLAG | Cap.FOUND_ROWS | Cap.TRANSACTIONS |
  Cap.MULTI_STATEMENTS | Cap.MULTI_RESULTS | Cap.PS_MULTI_RESULTS | Cap.SESSION_TRACK | Cap.DEPRECATE_EOF |
  Cap.OPTIONAL_RESULTSET_METADATA | Cap.QUERY_ATTRIBUTES | Cap.COMPRESS | Cap.ZSTD_COMPRESSION;

/** Largest connection-phase packet the proxy accepts (attributes are bounded at 64 KiB). */
export const MAX_HANDSHAKE_PACKET = 64 * 1024 + 1024;

/** A packet: 3-byte payload length, 1-byte sequence id, payload. */
export function buildPacket(seq: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(4 + payload.length);
  out.writeUIntLE(payload.length, 0, 3);
  out[3] = seq & 0xff;
  payload.copy(out, 4);
  return out;
}

/** Length and sequence id of a packet header (4 bytes). */
export function parsePacketHeader(head: Buffer): { length: number; seq: number } {
  return { length: head.readUIntLE(0, 3), seq: head[3]! };
}

export interface Greeting {
  readonly serverVersion: string;
  readonly connectionId: number;
  /** the nonce (auth-plugin-data), without the trailing NUL */
  readonly scramble: Buffer;
  readonly capabilities: number;
  readonly charset: number;
  readonly status: number;
  readonly plugin: string;
}

/** The proxy's Protocol::HandshakeV10. */
export function buildGreeting(g: Greeting): Buffer {
  const part1 = g.scramble.subarray(0, 8);
  const part2 = g.scramble.subarray(8);
  const out = Buffer.concat([
    Buffer.from([10]),
    Buffer.from(g.serverVersion + "\0", "utf8"),
    u32(g.connectionId),
    part1,
    Buffer.from([0]),
    u16(g.capabilities & 0xffff),
    Buffer.from([g.charset]),
    u16(g.status),
    u16(g.capabilities >>> 16),
    Buffer.from([g.scramble.length + 1]),
    Buffer.alloc(10),
    part2,
    Buffer.from([0]),
    Buffer.from(g.plugin + "\0", "utf8"),
  ]);
  return out;
}

/** Parses a backend's Protocol::HandshakeV10; undefined when it is not one. */
export function parseGreeting(p: Buffer): Greeting | undefined {
  if (p.length < 1 || p[0] !== 10) return undefined;
  const r = new Cursor(p, 1);
  const serverVersion = r.nulString();
  const connectionId = r.u32();
  const part1 = r.bytes(8);
  r.skip(1);
  const capsLow = r.u16();
  if (r.failed || part1 === undefined) return undefined;
  let capabilities = capsLow ?? 0;
  let charset = 0;
  let status = 0;
  let authLength = 0;
  let part2: Buffer = Buffer.alloc(0);
  let plugin = "mysql_native_password";
  if (!r.atEnd) {
    charset = r.u8() ?? 0;
    status = r.u16() ?? 0;
    capabilities = (capabilities | ((r.u16() ?? 0) << 16)) >>> 0;
    authLength = r.u8() ?? 0;
    r.skip(10);
    if (capabilities & Cap.SECURE_CONNECTION) {
      const n = Math.max(13, authLength - 8);
      part2 = r.bytes(n) ?? Buffer.alloc(0);
      // the last byte of part 2 is a NUL terminator, not nonce
      if (part2.length > 0 && part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
    }
    if (capabilities & Cap.PLUGIN_AUTH) plugin = r.atEnd ? plugin : r.nulStringOrRest();
  }
  if (r.failed || serverVersion === undefined || connectionId === undefined) return undefined;
  return {
    serverVersion,
    connectionId,
    scramble: Buffer.concat([part1, part2]),
    capabilities: capabilities >>> 0,
    charset,
    status,
    plugin,
  };
}

export type HandshakeResponse =
  | { readonly kind: "ssl"; readonly capabilities: number; readonly maxPacket: number; readonly charset: number }
  | {
      readonly kind: "response";
      readonly capabilities: number;
      readonly maxPacket: number;
      readonly charset: number;
      readonly user: string;
      readonly authResponse: Buffer;
      readonly database: string | undefined;
      readonly plugin: string | undefined;
      /** the attributes block as sent (lenenc pairs), and decoded */
      readonly attributesRaw: Buffer | undefined;
      readonly attributes: Readonly<Record<string, string>>;
    }
  | { readonly kind: "invalid"; readonly reason: string };

/** Parses HandshakeResponse41, or the 32-byte SSLRequest that precedes it under TLS. */
export function parseHandshakeResponse(p: Buffer): HandshakeResponse {
  if (p.length < 32) return { kind: "invalid", reason: "handshake response too short" };
  const capabilities = p.readUInt32LE(0);
  const maxPacket = p.readUInt32LE(4);
  const charset = p[8]!;
  if (!(capabilities & Cap.PROTOCOL_41)) return { kind: "invalid", reason: "client does not speak protocol 4.1" };
  if (p.length === 32) {
    return capabilities & Cap.SSL ? { kind: "ssl", capabilities, maxPacket, charset } : { kind: "invalid", reason: "truncated handshake response" };
  }
  const r = new Cursor(p, 32);
  const user = r.nulString();
  let authResponse: Buffer | undefined;
  if (capabilities & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) {
    const n = r.lenenc();
    authResponse = n === undefined ? undefined : r.bytes(n);
  } else if (capabilities & Cap.SECURE_CONNECTION) {
    const n = r.u8();
    authResponse = n === undefined ? undefined : r.bytes(n);
  } else {
    const s = r.nulBytes();
    authResponse = s;
  }
  let database: string | undefined;
  if (capabilities & Cap.CONNECT_WITH_DB && !r.atEnd) database = r.nulStringOrRest();
  let plugin: string | undefined;
  if (capabilities & Cap.PLUGIN_AUTH && !r.atEnd) plugin = r.nulStringOrRest();
  let attributesRaw: Buffer | undefined;
  const attributes: Record<string, string> = {};
  if (capabilities & Cap.CONNECT_ATTRS && !r.atEnd) {
    const start = r.offset;
    const n = r.lenenc();
    const block = n === undefined ? undefined : r.bytes(n);
    if (block === undefined) return { kind: "invalid", reason: "truncated connection attributes" };
    attributesRaw = p.subarray(start, r.offset);
    const a = new Cursor(block, 0);
    while (!a.atEnd && !a.failed) {
      const kl = a.lenenc();
      const k = kl === undefined ? undefined : a.bytes(kl);
      const vl = a.lenenc();
      const v = vl === undefined ? undefined : a.bytes(vl);
      if (k === undefined || v === undefined) return { kind: "invalid", reason: "malformed connection attributes" };
      attributes[k.toString("utf8")] = v.toString("utf8");
    }
  }
  if (r.failed || user === undefined || authResponse === undefined) return { kind: "invalid", reason: "malformed handshake response" };
  return { kind: "response", capabilities, maxPacket, charset, user, authResponse, database, plugin, attributesRaw, attributes };
}

/** A HandshakeResponse41 for the backend. */
export function buildHandshakeResponse(r: {
  capabilities: number;
  maxPacket: number;
  charset: number;
  user: string;
  authResponse: Buffer;
  database: string | undefined;
  plugin: string;
  attributesRaw: Buffer | undefined;
}): Buffer {
  const caps = r.capabilities;
  const parts: Buffer[] = [u32(caps), u32(r.maxPacket), Buffer.from([r.charset]), Buffer.alloc(23), Buffer.from(r.user + "\0", "utf8")];
  if (caps & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenenc(r.authResponse.length), r.authResponse);
  else parts.push(Buffer.from([r.authResponse.length]), r.authResponse);
  if (caps & Cap.CONNECT_WITH_DB) parts.push(Buffer.from((r.database ?? "") + "\0", "utf8"));
  if (caps & Cap.PLUGIN_AUTH) parts.push(Buffer.from(r.plugin + "\0", "utf8"));
  if (caps & Cap.CONNECT_ATTRS && r.attributesRaw !== undefined) parts.push(r.attributesRaw);
  return Buffer.concat(parts);
}

/** The 32-byte SSLRequest that precedes a HandshakeResponse41 under TLS. */
export function buildSslRequest(r: { capabilities: number; maxPacket: number; charset: number }): Buffer {
  return Buffer.concat([u32(r.capabilities | Cap.SSL), u32(r.maxPacket), Buffer.from([r.charset]), Buffer.alloc(23)]);
}

/** An AuthSwitchRequest: the plugin to use and its data (a nonce is followed by a NUL, as servers send it). */
export function buildAuthSwitchRequest(plugin: string, nonce: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xfe]), Buffer.from(plugin + "\0", "utf8"), nonce, Buffer.from([0])]);
}

/** The plugin name an AuthSwitchRequest names; undefined when it names none. */
export function authSwitchPlugin(p: Buffer): string | undefined {
  if (p[0] !== 0xfe || p.length < 2) return undefined;
  const end = p.indexOf(0, 1);
  return p.toString("utf8", 1, end < 0 ? p.length : end);
}

/** An ERR packet payload with a 5-character SQLSTATE (protocol 4.1 form). */
export function buildErr(code: number, sqlState: string, message: string): Buffer {
  return Buffer.concat([Buffer.from([0xff]), u16(code), Buffer.from("#" + sqlState.padEnd(5, "0").slice(0, 5) + message, "utf8")]);
}

/** Payload kinds of the authentication exchange (first byte). */
export const AuthPacket = { OK: 0x00, MORE_DATA: 0x01, SWITCH: 0xfe, ERR: 0xff } as const;

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n & 0xffff);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function lenenc(n: number): Buffer {
  if (n < 251) return Buffer.from([n]);
  if (n < 0x10000) return Buffer.concat([Buffer.from([0xfc]), u16(n)]);
  const b = Buffer.alloc(4);
  b[0] = 0xfd;
  b.writeUIntLE(n, 1, 3);
  return b;
}

/** Reads fields from a payload; a read past the end sets `failed` and answers undefined. */
class Cursor {
  readonly #p: Buffer;
  offset: number;
  failed = false;
  constructor(p: Buffer, offset: number) {
    this.#p = p;
    this.offset = offset;
  }
  get atEnd(): boolean {
    return this.offset >= this.#p.length;
  }
  #need(n: number): boolean {
    if (this.failed || this.offset + n > this.#p.length) {
      this.failed = true;
      return false;
    }
    return true;
  }
  skip(n: number): void {
    if (this.#need(n)) this.offset += n;
  }
  u8(): number | undefined {
    return this.#need(1) ? this.#p[this.offset++] : undefined;
  }
  u16(): number | undefined {
    if (!this.#need(2)) return undefined;
    const v = this.#p.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number | undefined {
    if (!this.#need(4)) return undefined;
    const v = this.#p.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  bytes(n: number): Buffer | undefined {
    if (!this.#need(n)) return undefined;
    const v = this.#p.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  lenenc(): number | undefined {
    const first = this.u8();
    if (first === undefined) return undefined;
    if (first < 0xfb) return first;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) {
      if (!this.#need(3)) return undefined;
      const v = this.#p.readUIntLE(this.offset, 3);
      this.offset += 3;
      return v;
    }
    // 8-byte lengths (and 0xfb/0xff) have no place in a connection-phase packet
    this.failed = true;
    return undefined;
  }
  nulBytes(): Buffer | undefined {
    if (this.failed) return undefined;
    const end = this.#p.indexOf(0, this.offset);
    if (end < 0) {
      this.failed = true;
      return undefined;
    }
    const v = this.#p.subarray(this.offset, end);
    this.offset = end + 1;
    return v;
  }
  /** a NUL-terminated string; invalid UTF-8 fails the read */
  nulString(): string | undefined {
    const b = this.nulBytes();
    return b === undefined ? undefined : this.#utf8(b);
  }
  /** a NUL-terminated string, or the rest of the payload when the NUL is missing (some servers) */
  nulStringOrRest(): string {
    const end = this.#p.indexOf(0, this.offset);
    const stop = end < 0 ? this.#p.length : end;
    const v = this.#utf8(this.#p.subarray(this.offset, stop)) ?? "";
    this.offset = stop + 1;
    return v;
  }
  #utf8(b: Buffer): string | undefined {
    const v = strictUtf8(b);
    if (v === undefined) this.failed = true;
    return v;
  }
}
