/**
 * Inputs for the handshake fuzz test: valid first packets of each protocol built from a seed,
 * then mutated (byte flips, truncation, insertion, duplicated slices, a forged length word).
 */
import { packet } from "./mysql-fake-backend.js";
import { startupPacket } from "./pg-helpers.js";

export type Rnd = () => number;

export const int = (rnd: Rnd, n: number): number => Math.floor(rnd() * n);
const pick = <T>(rnd: Rnd, items: readonly T[]): T => items[int(rnd, items.length)]!;

function word(rnd: Rnd): string {
  const chars = "abcdefghijklmnopqrstuvwxyz_0123456789*é\u0001";
  return Array.from({ length: int(rnd, 12) + (rnd() < 0.1 ? 0 : 1) }, () => pick(rnd, [...chars])).join("");
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** A PostgreSQL first packet: startup (3.0/3.2), SSLRequest, GSSENCRequest or CancelRequest. */
export function pgFirstPacket(rnd: Rnd): Buffer {
  const kind = int(rnd, 6);
  const special = (code: number, extra: Buffer = Buffer.alloc(0)) => {
    const b = Buffer.alloc(8 + extra.length);
    b.writeInt32BE(b.length, 0);
    b.writeInt32BE(code, 4);
    extra.copy(b, 8);
    return b;
  };
  if (kind === 0) return special(80877103);
  if (kind === 1) return special(80877104);
  if (kind === 2) return special(80877102, Buffer.from(Array.from({ length: 4 + int(rnd, 3) * 14 }, () => int(rnd, 256))));
  const params: Array<[string, string]> = [["user", word(rnd)]];
  if (rnd() < 0.7) params.push(["database", word(rnd)]);
  if (rnd() < 0.4) params.push(["application_name", word(rnd)]);
  if (rnd() < 0.2) params.push([word(rnd), word(rnd)]);
  const p = startupPacket(params);
  if (rnd() < 0.2) p.writeInt32BE(196610, 4);
  return p;
}

/** A MySQL HandshakeResponse41 payload (or the 32-byte SSLRequest). */
export function mysqlResponse(rnd: Rnd): Buffer {
  let caps = 0x000fa68d | (rnd() < 0.5 ? 1 << 21 : 0) | (rnd() < 0.5 ? 1 << 20 : 0) | (rnd() < 0.5 ? 1 << 3 : 0);
  if (rnd() < 0.15) caps |= 1 << 11;
  const head = Buffer.concat([u32le(caps), u32le(16 * 1024 * 1024), Buffer.from([45]), Buffer.alloc(23)]);
  if (caps & (1 << 11) && rnd() < 0.7) return head;
  const auth = Buffer.from(Array.from({ length: pick(rnd, [0, 20, 32]) }, () => int(rnd, 256)));
  const parts = [head, Buffer.from(word(rnd) + "\0"), Buffer.from([auth.length]), auth];
  if (caps & (1 << 3)) parts.push(Buffer.from(word(rnd) + "\0"));
  parts.push(Buffer.from("mysql_native_password\0"));
  if (caps & (1 << 20)) {
    const kv = Buffer.concat([Buffer.from([4]), Buffer.from("_pid"), Buffer.from([3]), Buffer.from(String(int(rnd, 999)).padStart(3, "0"))]);
    parts.push(Buffer.from([kv.length]), kv);
  }
  return Buffer.concat(parts);
}

/** A MySQL HandshakeV10 payload as a backend would send it. */
export function mysqlGreeting(rnd: Rnd): Buffer {
  const nonce = Buffer.from(Array.from({ length: 20 }, () => 0x21 + int(rnd, 90)));
  return Buffer.concat([
    Buffer.from([10]),
    Buffer.from(word(rnd) + "\0"),
    u32le(int(rnd, 1 << 30)),
    nonce.subarray(0, 8),
    Buffer.from([0, 0xff, 0xf7, 45, 2, 0, 0xff, 0x81, 21]),
    Buffer.alloc(10),
    nonce.subarray(8),
    Buffer.from([0]),
    Buffer.from(pick(rnd, ["mysql_native_password", "caching_sha2_password", word(rnd)]) + "\0"),
  ]);
}

/** Zero to four mutations of `input`. */
export function mutate(rnd: Rnd, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = int(rnd, 5);
  for (let i = 0; i < n; i++) {
    const at = int(rnd, Math.max(1, b.length));
    switch (int(rnd, 6)) {
      case 0:
        if (b.length > 0) b[at] = int(rnd, 256);
        break;
      case 1:
        b = b.subarray(0, at);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: int(rnd, 40) }, () => int(rnd, 256))), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b, b.subarray(at, at + int(rnd, 64))]);
        break;
      case 4:
        if (b.length > 0) b[at] = 0;
        break;
      default:
        if (b.length >= 4) b.writeInt32BE(pick(rnd, [0, 4, 7, 8, b.length, b.length + 1, 10_000, 10_001, -1, 0x7fffffff]), 0);
    }
  }
  return b;
}

/** A MySQL client's bytes after the greeting: one packet (seq 1), maybe mutated in frame or payload. */
export function mysqlClientBytes(rnd: Rnd): Buffer {
  const payload = rnd() < 0.8 ? mutate(rnd, mysqlResponse(rnd)) : mysqlResponse(rnd);
  const framed = packet(1, payload);
  return rnd() < 0.2 ? mutate(rnd, framed) : framed;
}
