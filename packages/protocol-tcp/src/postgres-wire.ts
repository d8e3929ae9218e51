import { strictUtf8 } from "./internal/utf8.js";

/**
 * PostgreSQL wire formats the proxy reads and writes before a session becomes a byte pipe: the
 * client's first packets (startup, SSLRequest, GSSENCRequest, CancelRequest), ErrorResponse,
 * BackendKeyData. Pure functions over buffers: a parser never throws, it answers `invalid`.
 */

/** Request codes of the special first packets (protocol-flow §"Start-up", message-formats). */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** The server's own bound on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;
/** Longest cancel key: protocol 3.2 allows secrets up to 256 bytes. */
export const MAX_CANCEL_SECRET = 256;

export type FirstPacket =
  | { readonly kind: "ssl" }
  | { readonly kind: "gssenc" }
  | { readonly kind: "cancel"; readonly pid: number; readonly secret: Buffer }
  | { readonly kind: "startup"; readonly major: number; readonly minor: number; readonly params: ReadonlyArray<readonly [string, string]> }
  | { readonly kind: "invalid"; readonly code: string; readonly reason: string };

/** Checks the int32 length that starts every first packet (it counts itself). */
export function firstPacketLengthProblem(length: number): string | undefined {
  if (length < 8) return `startup packet length ${length} is too short`;
  if (length > MAX_STARTUP_PACKET) return `startup packet length ${length} exceeds ${MAX_STARTUP_PACKET}`;
  return undefined;
}

/** Parses one whole first packet (length word included). */
export function parseFirstPacket(packet: Buffer): FirstPacket {
  if (packet.length < 8) return invalid("08P01", "startup packet too short");
  const length = packet.readInt32BE(0);
  if (length !== packet.length) return invalid("08P01", "startup packet length mismatch");
  const code = packet.readUInt32BE(4);
  if (code === SSL_REQUEST_CODE) return length === 8 ? { kind: "ssl" } : invalid("08P01", "malformed SSLRequest");
  if (code === GSSENC_REQUEST_CODE) return length === 8 ? { kind: "gssenc" } : invalid("08P01", "malformed GSSENCRequest");
  if (code === CANCEL_REQUEST_CODE) {
    const secretLength = length - 12;
    if (secretLength < 4 || secretLength > MAX_CANCEL_SECRET) return invalid("08P01", "malformed CancelRequest");
    return { kind: "cancel", pid: packet.readInt32BE(8), secret: Buffer.from(packet.subarray(12)) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return invalid("0A000", `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.x`);
  const params: Array<readonly [string, string]> = [];
  const seen = new Set<string>();
  let at = 8;
  for (;;) {
    if (at >= packet.length) return invalid("08P01", "startup packet has no terminator");
    if (packet[at] === 0) {
      if (at !== packet.length - 1) return invalid("08P01", "bytes after the startup packet's terminator");
      break;
    }
    const keyEnd = packet.indexOf(0, at);
    if (keyEnd < 0) return invalid("08P01", "unterminated startup parameter name");
    const valueEnd = packet.indexOf(0, keyEnd + 1);
    if (valueEnd < 0) return invalid("08P01", "unterminated startup parameter value");
    const key = strictUtf8(packet.subarray(at, keyEnd));
    const value = strictUtf8(packet.subarray(keyEnd + 1, valueEnd));
    if (key === undefined || value === undefined) return invalid("08P01", "startup parameter is not valid UTF-8");
    // a repeated key could route by one value while the server uses the other
    if (seen.has(key)) return invalid("08P01", `startup parameter "${key}" given twice`);
    seen.add(key);
    params.push([key, value]);
    at = valueEnd + 1;
  }
  return { kind: "startup", major, minor, params };
}

function invalid(code: string, reason: string): FirstPacket {
  return { kind: "invalid", code, reason };
}

/** Value of a startup parameter. */
export function startupParam(params: ReadonlyArray<readonly [string, string]>, key: string): string | undefined {
  for (const [k, v] of params) if (k === key) return v;
  return undefined;
}

/** A startup packet for the given version and parameters (in order). */
export function buildStartupPacket(major: number, minor: number, params: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of params) parts.push(Buffer.from(k + "\0" + v + "\0", "utf8"));
  const body = Buffer.concat(parts);
  const out = Buffer.alloc(8 + body.length + 1);
  out.writeInt32BE(out.length, 0);
  out.writeUInt32BE(((major << 16) | minor) >>> 0, 4);
  body.copy(out, 8);
  return out;
}

/** A CancelRequest carrying a backend's key. */
export function buildCancelRequest(pid: number, secret: Buffer): Buffer {
  const out = Buffer.alloc(12 + secret.length);
  out.writeInt32BE(out.length, 0);
  out.writeUInt32BE(CANCEL_REQUEST_CODE, 4);
  out.writeInt32BE(pid, 8);
  secret.copy(out, 12);
  return out;
}

/**
 * An ErrorResponse ('E') with severity FATAL, the SQLSTATE `code` and `message` (the fields a
 * client shows: S, V, C, M).
 */
export function buildErrorResponse(code: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, "utf8");
  const out = Buffer.alloc(5 + fields.length);
  out[0] = 0x45;
  out.writeInt32BE(4 + fields.length, 1);
  fields.copy(out, 5);
  return out;
}

/** A BackendKeyData ('K') message: process id and secret (4 bytes in 3.0, up to 256 in 3.2). */
export function buildBackendKeyData(pid: number, secret: Buffer): Buffer {
  const out = Buffer.alloc(9 + secret.length);
  out[0] = 0x4b;
  out.writeInt32BE(8 + secret.length, 1);
  out.writeInt32BE(pid, 5);
  secret.copy(out, 9);
  return out;
}

/** Reads a whole BackendKeyData message; undefined when it is malformed. */
export function parseBackendKeyData(message: Buffer): { pid: number; secret: Buffer } | undefined {
  if (message.length < 13 || message[0] !== 0x4b) return undefined;
  const secretLength = message.length - 9;
  if (secretLength > MAX_CANCEL_SECRET) return undefined;
  return { pid: message.readInt32BE(5), secret: Buffer.from(message.subarray(9)) };
}

/** AuthenticationSASL: an 'R' message with code 10 and a list of mechanism names. */
export function isSaslMechanismList(message: Buffer): boolean {
  return message.length >= 9 && message[0] === 0x52 && message.readInt32BE(5) === 10;
}

/**
 * The AuthenticationSASL message without `SCRAM-SHA-256-PLUS`: channel binding ties the
 * exchange to one TLS session, and the client's TLS session (ending at the proxy) is never the
 * server's, so a client that chose it could only fail.
 */
export function withoutChannelBinding(message: Buffer): Buffer {
  const names = message.toString("utf8", 9).split("\0").filter((n) => n !== "" && n !== "SCRAM-SHA-256-PLUS");
  const body = Buffer.from(names.map((n) => n + "\0").join("") + "\0", "utf8");
  const out = Buffer.alloc(9 + body.length);
  out[0] = 0x52;
  out.writeInt32BE(8 + body.length, 1);
  out.writeInt32BE(10, 5);
  body.copy(out, 9);
  return out;
}

/** Message type bytes the proxy looks at in the backend's startup reply. */
export const BackendMessage = {
  AUTHENTICATION: 0x52,
  BACKEND_KEY_DATA: 0x4b,
  ERROR_RESPONSE: 0x45,
  READY_FOR_QUERY: 0x5a,
} as const;
