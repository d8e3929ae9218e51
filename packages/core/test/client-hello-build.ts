/**
 * Builds TLS ClientHello messages for the reader's tests and fuzz test: the handshake message
 * (with the fields a test wants) and its split into records of chosen sizes.
 */
export interface HelloSpec {
  sni?: string | undefined;
  alpn?: string[] | undefined;
  /** add GREASE cipher suites, extensions and an ALPN value (RFC 8701), as browsers do */
  grease?: boolean;
  versions?: number[];
  sessionIdLength?: number;
  /** extensions added after the others */
  extra?: Array<{ type: number; data: Buffer }>;
  /** no extensions block at all (a TLS 1.2 client may send none) */
  noExtensions?: boolean;
  /** a padding extension (21) of this many bytes */
  padding?: number | undefined;
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
const vec8 = (b: Buffer) => Buffer.concat([Buffer.from([b.length]), b]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), vec16(data)]);

/** The ClientHello handshake message (type 1, 24-bit length, body). */
export function buildClientHello(spec: HelloSpec = {}): Buffer {
  const suites = [0x1301, 0x1302, 0xc02f];
  if (spec.grease) suites.unshift(0x3a3a);
  const exts: Buffer[] = [];
  if (spec.grease) exts.push(ext(0x0a0a, Buffer.alloc(0)));
  if (spec.sni !== undefined) {
    const name = Buffer.from(spec.sni, "latin1");
    exts.push(ext(0, vec16(Buffer.concat([Buffer.from([0]), vec16(name)]))));
  }
  if (spec.alpn !== undefined) {
    const list = [...(spec.grease ? ["\x5a\x5a"] : []), ...spec.alpn];
    exts.push(ext(16, vec16(Buffer.concat(list.map((p) => vec8(Buffer.from(p, "latin1")))))));
  }
  const versions = spec.versions ?? [0x0304, 0x0303];
  exts.push(ext(43, vec8(Buffer.concat(versions.map(u16)))));
  exts.push(ext(10, vec16(Buffer.concat([u16(0x001d), u16(0x0017)]))));
  for (const e of spec.extra ?? []) exts.push(ext(e.type, e.data));
  if (spec.padding !== undefined) exts.push(ext(21, Buffer.alloc(spec.padding)));
  if (spec.grease) exts.push(ext(0x1a1a, Buffer.from([0])));
  const body = Buffer.concat([
    u16(0x0303),
    Buffer.alloc(32, 7),
    vec8(Buffer.alloc(spec.sessionIdLength ?? 32, 1)),
    vec16(Buffer.concat(suites.map(u16))),
    vec8(Buffer.from([0])),
    ...(spec.noExtensions ? [] : [vec16(Buffer.concat(exts))]),
  ]);
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** Splits a handshake message into handshake records of at most `size` bytes each. */
export function toRecords(handshake: Buffer, size = 16384, contentType = 22): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const frag = handshake.subarray(at, Math.min(handshake.length, at + size));
    out.push(Buffer.from([contentType, 3, 1, frag.length >> 8, frag.length & 0xff]), frag);
  }
  return Buffer.concat(out);
}
