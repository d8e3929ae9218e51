/**
 * Reads a TLS ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) from the first bytes of a
 * connection without terminating TLS: the server name (RFC 6066 server_name), the ALPN list
 * (RFC 7301) and the offered versions (supported_versions).
 *
 * Incremental: `push` takes the bytes as they arrive (a record split across TCP segments, a
 * ClientHello split across several records) and answers once the whole ClientHello is there.
 * Bounded: more than `maxLength` bytes without a complete ClientHello, or a ClientHello that
 * announces more, is refused before it is buffered. Anything that is not a well-formed
 * ClientHello throws `ClientHelloError`; no other exception leaves this module.
 */
import { ProxyError } from "./errors.js";

/** The first bytes are not a TLS ClientHello, or a malformed one, or too long. */
export class ClientHelloError extends ProxyError {
  override name = "ClientHelloError";
  constructor(message: string) {
    super("PRX_ERR_CLIENT_HELLO", message);
  }
}

/** Default bound on the bytes read before the ClientHello is complete (records included). */
export const CLIENT_HELLO_DEFAULT_LIMIT = 16 * 1024;

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const MAX_RECORD = 16384;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

export interface ClientHello {
  /** the host_name of server_name, lower-cased, without a trailing dot; undefined when none */
  readonly sni: string | undefined;
  /** the ALPN protocols offered, in the client's order (empty when none) */
  readonly alpn: readonly string[];
  /** legacy_version of the ClientHello (0x0303 for TLS 1.2 and 1.3) */
  readonly legacyVersion: number;
  /** supported_versions, in the client's order (empty when absent) */
  readonly supportedVersions: readonly number[];
  /** bytes of the records that carried the ClientHello */
  readonly length: number;
}

/** True for the GREASE values of RFC 8701 (0x0a0a, 0x1a1a, … 0xfafa). */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}

/**
 * One ClientHello being read. `push` each chunk in order; it returns the ClientHello once
 * complete (later pushes return it again), undefined while more bytes are needed.
 */
export class ClientHelloReader {
  readonly maxLength: number;
  /** bytes received and not yet taken apart into records */
  #pending: Buffer[] = [];
  #pendingLength = 0;
  /** handshake-layer bytes gathered from the records so far */
  #handshake: Buffer[] = [];
  #handshakeLength = 0;
  /** announced length of the ClientHello body (-1 until its 4-byte header is in) */
  #bodyLength = -1;
  #consumed = 0;
  #done: ClientHello | undefined;

  constructor(maxLength = CLIENT_HELLO_DEFAULT_LIMIT) {
    this.maxLength = maxLength;
  }

  push(chunk: Uint8Array): ClientHello | undefined {
    if (this.#done !== undefined) return this.#done;
    if (chunk.length === 0) return undefined;
    if (this.#consumed === 0 && this.#pendingLength === 0 && chunk[0] !== RECORD_HANDSHAKE) throw notTls();
    this.#pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.#pendingLength += chunk.length;
    for (;;) {
      if (this.#pendingLength < 5) break;
      const head = this.#peek(5);
      const type = head[0]!;
      const recordLength = (head[3]! << 8) | head[4]!;
      if (type !== RECORD_HANDSHAKE) throw new ClientHelloError(`TLS record type ${type} before the ClientHello was complete`);
      if (head[1] !== 3) throw new ClientHelloError(`not a TLS record (version ${head[1]}.${head[2]})`);
      if (recordLength === 0 || recordLength > MAX_RECORD) throw new ClientHelloError(`TLS handshake record of ${recordLength} bytes`);
      if (this.#consumed + 5 + recordLength > this.maxLength) throw tooLong(this.maxLength);
      if (this.#pendingLength < 5 + recordLength) break;
      const record = this.#take(5 + recordLength);
      this.#consumed += record.length;
      this.#handshake.push(record.subarray(5));
      this.#handshakeLength += recordLength;
      const hello = this.#handshakeStep();
      if (hello !== undefined) return hello;
    }
    // the bytes so far cannot complete within the limit
    if (this.#consumed + this.#pendingLength > this.maxLength) throw tooLong(this.maxLength);
    return undefined;
  }

  #handshakeStep(): ClientHello | undefined {
    if (this.#handshakeLength < 4) return undefined;
    if (this.#bodyLength < 0) {
      const hs = this.#joinHandshake();
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO) throw new ClientHelloError(`TLS handshake message ${hs[0]} is not a ClientHello`);
      this.#bodyLength = (hs[1]! << 16) | (hs[2]! << 8) | hs[3]!;
      // each record adds 5 bytes of framing: the smallest number of bytes this ClientHello needs
      if (4 + this.#bodyLength + 5 * Math.ceil((4 + this.#bodyLength) / MAX_RECORD) > this.maxLength) throw tooLong(this.maxLength);
    }
    // joined once, when complete: a ClientHello sent in many tiny records costs no repeated copies
    if (this.#handshakeLength < 4 + this.#bodyLength) return undefined;
    const hs = this.#joinHandshake();
    // bytes after the ClientHello in its last record (a following handshake message) are not ours
    const body = hs.subarray(4, 4 + this.#bodyLength);
    this.#done = parseClientHelloBody(body, this.#consumed);
    this.#pending = [];
    this.#handshake = [];
    return this.#done;
  }

  #joinHandshake(): Buffer {
    const hs = this.#handshake.length === 1 ? this.#handshake[0]! : Buffer.concat(this.#handshake);
    this.#handshake = [hs];
    return hs;
  }

  #peek(n: number): Buffer {
    const first = this.#pending[0]!;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.#pending);
    this.#pending = [joined];
    return joined;
  }

  #take(n: number): Buffer {
    const buf = this.#peek(n);
    const out = buf.subarray(0, n);
    const rest = buf.subarray(n);
    this.#pending = rest.length > 0 ? [rest, ...this.#pending.slice(1)] : this.#pending.slice(1);
    this.#pendingLength -= n;
    return out;
  }
}

function notTls(): ClientHelloError {
  return new ClientHelloError("not a TLS handshake (the first byte is not a handshake record)");
}

function tooLong(limit: number): ClientHelloError {
  return new ClientHelloError(`TLS ClientHello longer than ${limit} bytes`);
}

/** A bounds-checked reader over the ClientHello body. */
class Cursor {
  at = 0;
  readonly buf: Buffer;
  readonly end: number;
  constructor(buf: Buffer, at = 0, end = buf.length) {
    this.buf = buf;
    this.at = at;
    this.end = end;
  }
  need(n: number, what: string): void {
    if (this.at + n > this.end) throw new ClientHelloError(`ClientHello truncated in ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.at++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  /** a sub-cursor over the next `n` bytes, which this cursor skips */
  slice(n: number, what: string): Cursor {
    this.need(n, what);
    const c = new Cursor(this.buf, this.at, this.at + n);
    this.at += n;
    return c;
  }
  get left(): number {
    return this.end - this.at;
  }
}

function parseClientHelloBody(body: Buffer, length: number): ClientHello {
  const c = new Cursor(body);
  const legacyVersion = c.u16("legacy_version");
  if (legacyVersion >> 8 !== 3) throw new ClientHelloError(`ClientHello legacy_version 0x${legacyVersion.toString(16)}`);
  c.slice(32, "random");
  const sessionId = c.u8("legacy_session_id");
  if (sessionId > 32) throw new ClientHelloError("ClientHello session id longer than 32 bytes");
  c.slice(sessionId, "legacy_session_id");
  const suites = c.u16("cipher_suites");
  if (suites < 2 || suites % 2 !== 0) throw new ClientHelloError("ClientHello cipher_suites length is not a positive even number");
  c.slice(suites, "cipher_suites");
  const compressions = c.u8("compression_methods");
  if (compressions < 1) throw new ClientHelloError("ClientHello without compression methods");
  c.slice(compressions, "compression_methods");
  let sni: string | undefined;
  let alpn: string[] = [];
  let supportedVersions: number[] = [];
  // a ClientHello of TLS 1.2 and before may end here, without extensions
  if (c.left > 0) {
    const ext = c.slice(c.u16("extensions"), "extensions");
    if (c.left !== 0) throw new ClientHelloError("bytes after the ClientHello extensions");
    const seen = new Set<number>();
    while (ext.left > 0) {
      const type = ext.u16("extension type");
      const data = ext.slice(ext.u16("extension length"), "extension data");
      if (seen.has(type)) throw new ClientHelloError(`ClientHello repeats extension ${type}`);
      seen.add(type);
      if (type === EXT_SERVER_NAME) sni = serverName(data);
      else if (type === EXT_ALPN) alpn = alpnList(data);
      else if (type === EXT_SUPPORTED_VERSIONS) supportedVersions = versionList(data);
    }
  }
  return Object.freeze({ sni, alpn: Object.freeze(alpn), legacyVersion, supportedVersions: Object.freeze(supportedVersions), length });
}

const HOST_LABELS = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

function serverName(data: Cursor): string | undefined {
  // an empty server_name extension is what a server sends back; from a client it is malformed
  const list = data.slice(data.u16("server_name_list"), "server_name_list");
  if (data.left !== 0) throw new ClientHelloError("bytes after the server_name list");
  if (list.left === 0) throw new ClientHelloError("empty server_name list");
  let host: string | undefined;
  while (list.left > 0) {
    const nameType = list.u8("server_name type");
    const name = list.slice(list.u16("server_name"), "server_name");
    if (nameType !== 0) continue; // other name types are unknown to everyone; skip
    if (host !== undefined) throw new ClientHelloError("more than one host_name in server_name");
    // RFC 6066 forbids the trailing dot; clients that send one still mean the same host
    const raw = name.buf.toString("latin1", name.at, name.end).toLowerCase();
    const text = raw.endsWith(".") ? raw.slice(0, -1) : raw;
    if (text.length === 0 || text.length > 255 || !HOST_LABELS.test(text)) {
      throw new ClientHelloError(`invalid SNI host name "${printable(text)}"`);
    }
    host = text;
  }
  return host;
}

function alpnList(data: Cursor): string[] {
  const list = data.slice(data.u16("ALPN list"), "ALPN list");
  if (data.left !== 0) throw new ClientHelloError("bytes after the ALPN list");
  if (list.left === 0) throw new ClientHelloError("empty ALPN list");
  const out: string[] = [];
  while (list.left > 0) {
    const len = list.u8("ALPN protocol");
    if (len === 0) throw new ClientHelloError("empty ALPN protocol name");
    const p = list.slice(len, "ALPN protocol");
    out.push(p.buf.toString("latin1", p.at, p.end));
  }
  return out;
}

function versionList(data: Cursor): number[] {
  const len = data.u8("supported_versions");
  if (len < 2 || len % 2 !== 0 || len !== data.left) throw new ClientHelloError("malformed supported_versions");
  const out: number[] = [];
  while (data.left > 0) out.push(data.u16("supported_versions"));
  return out;
}

function printable(s: string): string {
  return s.slice(0, 64).replace(/[^\x20-\x7e]/g, "?");
}
