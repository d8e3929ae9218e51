import { expect } from "chai";
import {
  crc32c,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  encodeProxyHeaderV2Local,
  parseProxyHeader,
  PROXY_V2_SIGNATURE,
  ProxyHeaderError,
  ProxyTlv,
  type ProxyHeaderParse,
} from "@switchyard/core";

function done(p: ProxyHeaderParse) {
  if (p.state !== "done") throw new Error(`expected a complete header, got ${p.state}`);
  return p;
}

function refused(data: Buffer | string, pattern: RegExp, max?: number): void {
  const buf = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  let err: unknown;
  try {
    parseProxyHeader(buf, max);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${JSON.stringify(buf.toString("latin1"))} to be refused`).to.be.instanceOf(ProxyHeaderError);
  expect((err as ProxyHeaderError).code).to.equal("PRX_ERR_PROXY_HEADER");
  expect((err as Error).message).to.match(pattern);
}

/** Every strict prefix of a valid header asks for more bytes. */
function partialForEveryPrefix(buf: Buffer): void {
  for (let i = 0; i < buf.length; i++) expect(parseProxyHeader(buf.subarray(0, i)).state, `prefix ${i}`).to.equal("partial");
}

/** A v2 header from parts: version/command byte, family byte, body. */
function v2(verCmd: number, fam: number, body: Buffer): Buffer {
  const head = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(head);
  head[12] = verCmd;
  head[13] = fam;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

function tlv(type: number, value: Buffer | string): Buffer {
  const v = typeof value === "string" ? Buffer.from(value) : value;
  const out = Buffer.alloc(3 + v.length);
  out[0] = type;
  out.writeUInt16BE(v.length, 1);
  v.copy(out, 3);
  return out;
}

const INET_BODY = Buffer.from([192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xbb]); // 192.0.2.1:12345 -> 198.51.100.7:443

describe("PROXY protocol v1 parser", () => {
  it("reads a TCP4 line and says how long it was, leaving what follows", () => {
    const line = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
    const p = done(parseProxyHeader(Buffer.from(line + "GET / HTTP/1.1\r\n")));
    expect(p.length).to.equal(line.length);
    expect(p.header).to.deep.include({ version: 1, command: "PROXY", family: "TCP4" });
    expect(p.header.source).to.deep.equal({ address: "192.0.2.1", port: 56324 });
    expect(p.header.destination).to.deep.equal({ address: "198.51.100.7", port: 443 });
    partialForEveryPrefix(Buffer.from(line));
  });

  it("reads a TCP6 line (addresses in RFC 5952 form)", () => {
    const p = done(parseProxyHeader(Buffer.from("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 65535 0\r\n")));
    expect(p.header.source).to.deep.equal({ address: "2001:db8::1", port: 65535 });
    expect(p.header.destination).to.deep.equal({ address: "::1", port: 0 });
  });

  it("reads UNKNOWN with or without the rest of the line (which is ignored)", () => {
    for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]) {
      const p = done(parseProxyHeader(Buffer.from(line)));
      expect(p.length).to.equal(line.length);
      expect(p.header.family).to.equal("UNKNOWN");
      expect(p.header.source).to.equal(undefined);
    }
  });

  it("refuses bytes that cannot start a header, at the first byte that differs", () => {
    refused("GET / HTTP/1.1\r\n", /not a PROXY protocol header/);
    refused("PROXZ", /not a PROXY protocol header/);
    refused("\x16\x03\x01", /not a PROXY protocol header/);
    refused("proxy TCP4", /not a PROXY protocol header/);
  });

  it("refuses malformed lines", () => {
    refused("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", /unknown protocol "TCP5"/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", /4 fields/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", /4 fields/);
    refused("PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", /4 fields/);
    refused("PROXY TCP4 256.2.3.4 1.2.3.4 1 2\r\n", /invalid TCP4 address/);
    refused("PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n", /invalid TCP4 address/);
    refused("PROXY TCP4 ::1 1.2.3.4 1 2\r\n", /invalid TCP4 address/);
    refused("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", /invalid TCP6 address/);
    refused("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", /invalid TCP6 address/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", /invalid port/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n", /invalid port/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", /invalid port/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", /CR not followed by LF/);
    refused("PROXY TCP4 1.2.3.4\n1.2.3.4 1 2\r\n", /invalid character/);
    refused("PROXY TCP4 1.2.3.4 1.2.3.\xe9 1 2\r\n", /invalid character/);
  });

  it("refuses a line with no CRLF within 107 bytes, without waiting for more", () => {
    const long = "PROXY UNKNOWN " + "x".repeat(93); // 107 bytes, no CRLF
    refused(long, /no CRLF within 107 bytes/);
    refused(long.slice(0, 106), /no CRLF within 107 bytes/); // a CR at byte 107 would make 108
    expect(parseProxyHeader(Buffer.from(long.slice(0, 105))).state).to.equal("partial");
    const longest = "PROXY UNKNOWN " + "x".repeat(91) + "\r\n";
    expect(done(parseProxyHeader(Buffer.from(longest))).length).to.equal(107);
    refused("PROXY UNKNOWN " + "x".repeat(92) + "\r\n", /no CRLF within 107 bytes/);
    // a lower limit applies to v1 too
    refused("PROXY UNKNOWN xxxxxxxx", /no CRLF within 20 bytes/, 20);
  });
});

describe("PROXY protocol v2 parser", () => {
  it("reads a TCP over IPv4 header with TLVs (AUTHORITY, ALPN, unknown, NOOP)", () => {
    const tlvs = Buffer.concat([tlv(ProxyTlv.ALPN, "h2"), tlv(ProxyTlv.AUTHORITY, "db.example.com"), tlv(0xe0, Buffer.from([1, 2])), tlv(ProxyTlv.NOOP, "")]);
    const buf = v2(0x21, 0x11, Buffer.concat([INET_BODY, tlvs]));
    const p = done(parseProxyHeader(Buffer.concat([buf, Buffer.from("rest")])));
    expect(p.length).to.equal(buf.length);
    expect(p.header).to.deep.include({ version: 2, command: "PROXY", family: "TCP4", authority: "db.example.com", alpn: "h2" });
    expect(p.header.source).to.deep.equal({ address: "192.0.2.1", port: 12345 });
    expect(p.header.destination).to.deep.equal({ address: "198.51.100.7", port: 443 });
    expect(p.header.tlvs.map((t) => t.type)).to.deep.equal([1, 2, 0xe0, 4]);
    expect([...p.header.tlvs[2]!.value]).to.deep.equal([1, 2]);
    partialForEveryPrefix(buf);
  });

  it("reads TCP over IPv6 and UDP over IPv4", () => {
    const body = Buffer.alloc(36);
    body[15] = 1; // ::1
    Buffer.from([0x20, 0x01, 0x0d, 0xb8]).copy(body, 16); // 2001:db8::
    body.writeUInt16BE(1000, 32);
    body.writeUInt16BE(5432, 34);
    const p = done(parseProxyHeader(v2(0x21, 0x21, body)));
    expect(p.header.family).to.equal("TCP6");
    expect(p.header.source).to.deep.equal({ address: "::1", port: 1000 });
    expect(p.header.destination).to.deep.equal({ address: "2001:db8::", port: 5432 });
    expect(done(parseProxyHeader(v2(0x21, 0x12, INET_BODY))).header.family).to.equal("UDP4");
  });

  it("gives no address for LOCAL, UNSPEC and UNIX headers", () => {
    const local = done(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))));
    expect(local.header).to.deep.include({ command: "LOCAL", family: "UNKNOWN" });
    expect(local.header.source).to.equal(undefined);
    // LOCAL with an address block: ignored; a LOCAL header may even be shorter than its family
    expect(done(parseProxyHeader(v2(0x20, 0x11, INET_BODY))).header.source).to.equal(undefined);
    expect(done(parseProxyHeader(v2(0x20, 0x11, Buffer.alloc(3)))).header.command).to.equal("LOCAL");
    expect(done(parseProxyHeader(v2(0x21, 0x10, INET_BODY))).header.source).to.equal(undefined);
    const unix = done(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216))));
    expect(unix.header.family).to.equal("UNIX");
    expect(unix.header.source).to.equal(undefined);
    expect(done(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0)))).header.family).to.equal("UNKNOWN");
  });

  it("refuses a bad signature, version, command, family or transport", () => {
    const bad = Buffer.from(PROXY_V2_SIGNATURE);
    bad[6] = 0x00;
    refused(bad, /not a PROXY protocol header/);
    refused(v2(0x11, 0x11, INET_BODY), /unsupported version 1/);
    refused(v2(0x22, 0x11, INET_BODY), /unknown command 2/);
    refused(v2(0x21, 0x41, INET_BODY), /unknown address family 4/);
    refused(v2(0x21, 0x13, INET_BODY), /unknown transport 3/);
    refused(v2(0x21, 0x11, INET_BODY.subarray(0, 11)), /address block shorter/);
    refused(v2(0x21, 0x21, INET_BODY), /address block shorter/);
  });

  it("refuses a header longer than the limit from its first 16 bytes", () => {
    const head = v2(0x21, 0x11, Buffer.alloc(5000)).subarray(0, 16);
    refused(head, /header of 5016 bytes exceeds the limit of 4096/);
    refused(v2(0x21, 0x11, Buffer.alloc(100)).subarray(0, 16), /exceeds the limit of 64/, 64);
    expect(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(65535)).subarray(0, 16), 70_000).state).to.equal("partial");
  });

  it("refuses truncated and overrunning TLVs and a non-UTF-8 AUTHORITY", () => {
    refused(v2(0x21, 0x11, Buffer.concat([INET_BODY, Buffer.from([0x02, 0x00])])), /truncated TLV/);
    refused(v2(0x21, 0x11, Buffer.concat([INET_BODY, Buffer.from([0x02, 0x00, 0x05, 0x61])])), /overruns the header/);
    refused(v2(0x21, 0x11, Buffer.concat([INET_BODY, tlv(ProxyTlv.AUTHORITY, Buffer.from([0xc3, 0x28]))])), /AUTHORITY TLV is not UTF-8/);
  });

  it("checks a CRC32C TLV over the whole header", () => {
    expect(crc32c(Buffer.from("123456789"))).to.equal(0xe3069283); // the standard check value
    const withCrc = (value: number | undefined, extra: Buffer = Buffer.alloc(0)) => {
      const crc = Buffer.alloc(4);
      const buf = v2(0x21, 0x11, Buffer.concat([INET_BODY, tlv(ProxyTlv.CRC32C, crc), extra]));
      buf.writeUInt32BE(value ?? crc32c(buf), 16 + 12 + 3);
      return buf;
    };
    expect(done(parseProxyHeader(withCrc(undefined))).header.tlvs[0]!.type).to.equal(ProxyTlv.CRC32C);
    const good = withCrc(undefined);
    refused(withCrc((good.readUInt32BE(31) ^ 1) >>> 0), /CRC32C mismatch/);
    refused(v2(0x21, 0x11, Buffer.concat([INET_BODY, tlv(ProxyTlv.CRC32C, Buffer.alloc(3))])), /must hold 4 bytes/);
    refused(withCrc(undefined, tlv(ProxyTlv.CRC32C, Buffer.alloc(4))), /more than one CRC32C/);
  });
});

describe("PROXY protocol encoders", () => {
  const src = { address: "192.0.2.1", port: 51000 };
  const dst = { address: "198.51.100.7", port: 5432 };

  it("writes v1 lines that the parser reads back", () => {
    expect(encodeProxyHeaderV1({ source: src, destination: dst }).toString()).to.equal("PROXY TCP4 192.0.2.1 198.51.100.7 51000 5432\r\n");
    const v6 = done(parseProxyHeader(encodeProxyHeaderV1({ source: { address: "2001:db8::5", port: 1 }, destination: { address: "::1", port: 2 } })));
    expect(v6.header.family).to.equal("TCP6");
    expect(v6.header.source).to.deep.equal({ address: "2001:db8::5", port: 1 });
  });

  it("writes mixed families as TCP6 with the IPv4 address mapped, and UNKNOWN for non-IPs", () => {
    expect(encodeProxyHeaderV1({ source: src, destination: { address: "::1", port: 2 } }).toString()).to.equal("PROXY TCP6 ::ffff:192.0.2.1 ::1 51000 2\r\n");
    expect(encodeProxyHeaderV1({ source: { address: "/tmp/sock", port: 0 }, destination: dst }).toString()).to.equal("PROXY UNKNOWN\r\n");
    expect(encodeProxyHeaderV1({ source: { ...src, port: 70000 }, destination: dst }).toString()).to.equal("PROXY UNKNOWN\r\n");
  });

  it("writes v2 headers with AUTHORITY and ALPN TLVs that the parser reads back", () => {
    const buf = encodeProxyHeaderV2({ source: src, destination: dst, authority: "shop.example.com", alpn: "h2" });
    const p = done(parseProxyHeader(buf));
    expect(p.length).to.equal(buf.length);
    expect(p.header).to.deep.include({ version: 2, command: "PROXY", family: "TCP4", authority: "shop.example.com", alpn: "h2" });
    expect(p.header.source).to.deep.equal(src);
    expect(p.header.destination).to.deep.equal(dst);
    const v6 = done(parseProxyHeader(encodeProxyHeaderV2({ source: { address: "::1", port: 9 }, destination: dst })));
    expect(v6.header.family).to.equal("TCP6");
    expect(v6.header.destination).to.deep.equal({ address: "::ffff:198.51.100.7", port: 5432 });
    expect(v6.header.tlvs).to.deep.equal([]);
  });

  it("writes LOCAL, and UNSPEC for addresses that are not IPs", () => {
    const local = encodeProxyHeaderV2Local();
    expect(local.length).to.equal(16);
    expect(done(parseProxyHeader(local)).header.command).to.equal("LOCAL");
    const unspec = done(parseProxyHeader(encodeProxyHeaderV2({ source: { address: "x", port: 1 }, destination: dst, authority: "a" })));
    expect(unspec.header).to.deep.include({ command: "PROXY", family: "UNKNOWN", authority: "a" });
  });
});
