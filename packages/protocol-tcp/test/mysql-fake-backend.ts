import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { startTcpServer, type TestServer } from "@switchyard/test-utils";

/** A MySQL packet. */
export function packet(seq: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  head[3] = seq;
  return Buffer.concat([head, payload]);
}

export const OK_PAYLOAD = Buffer.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]);

/** A HandshakeV10 with `plugin` and a fixed 20-byte nonce (PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, DEPRECATE_EOF...). */
export function fakeGreeting(plugin: string, nonce: Buffer, tls = false): Buffer {
  const caps = (0x01ffffff & ~(1 << 5) & ~(1 << 11) & ~(1 << 26)) | (tls ? 1 << 11 : 0);
  const b: Buffer[] = [
    Buffer.from([10]),
    Buffer.from("8.0.99-fake\0"),
    Buffer.from([7, 0, 0, 0]),
    nonce.subarray(0, 8),
    Buffer.from([0]),
    Buffer.from([caps & 0xff, (caps >>> 8) & 0xff]),
    Buffer.from([45, 2, 0]),
    Buffer.from([(caps >>> 16) & 0xff, (caps >>> 24) & 0xff]),
    Buffer.from([21]),
    Buffer.alloc(10),
    nonce.subarray(8, 20),
    Buffer.from([0]),
    Buffer.from(plugin + "\0"),
  ];
  return Buffer.concat(b);
}

/** Reads MySQL packets from a socket, one callback per packet. */
export function onPackets(s: Socket, fn: (seq: number, payload: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  s.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUIntLE(0, 3)) {
      const len = buf.readUIntLE(0, 3);
      fn(buf[3]!, buf.subarray(4, 4 + len));
      buf = buf.subarray(4 + len);
    }
  });
}

/** The auth response field of a HandshakeResponse41 with PLUGIN_AUTH_LENENC_CLIENT_DATA (short values). */
export function authResponseOf(payload: Buffer): Buffer {
  const userEnd = payload.indexOf(0, 32);
  const caps = payload.readUInt32LE(0);
  const at = userEnd + 1;
  const n = payload[at]!;
  return caps & (1 << 21) || caps & (1 << 15) ? payload.subarray(at + 1, at + 1 + n) : payload.subarray(at, payload.indexOf(0, at));
}

export function sha256(b: Buffer): Buffer {
  return createHash("sha256").update(b).digest();
}

/** caching_sha2_password's fast-auth token for `password` over `nonce`. */
export function cachingSha2Token(password: string, nonce: Buffer): Buffer {
  const s1 = sha256(Buffer.from(password));
  const s3 = sha256(Buffer.concat([sha256(s1), nonce]));
  return Buffer.from(s1.map((v, i) => v ^ s3[i]!));
}

export interface FakeMysql extends TestServer {
  /** sequence ids and first bytes of every packet the backend received, per connection */
  received: Array<Array<{ seq: number; payload: Buffer }>>;
}

/**
 * A backend that greets with `plugin`, then answers each client packet with what `reply`
 * returns (packets as [seq, payload]); after an OK it answers COM_QUIT by closing.
 */
export async function startFakeMysql(
  plugin: string,
  nonce: Buffer,
  reply: (step: number, seq: number, payload: Buffer) => Array<[number, Buffer]>,
): Promise<FakeMysql> {
  const received: FakeMysql["received"] = [];
  const server = await startTcpServer((s) => {
    const mine: Array<{ seq: number; payload: Buffer }> = [];
    received.push(mine);
    s.write(packet(0, fakeGreeting(plugin, nonce)));
    let step = 0;
    onPackets(s, (seq, payload) => {
      mine.push({ seq, payload });
      if (seq === 0 && payload[0] === 0x01) return void s.end();
      for (const [q, p] of reply(step++, seq, payload)) s.write(packet(q, p));
    });
  });
  return Object.assign(server, { received });
}
