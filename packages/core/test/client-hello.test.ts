import { once } from "node:events";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { expect } from "chai";
import { ClientHelloError, ClientHelloReader, isGrease, type ClientHello } from "@switchyard/core";
import { buildClientHello, toRecords, type HelloSpec } from "./client-hello-build.js";

function read(bytes: Buffer, chunk = bytes.length, max?: number): ClientHello | undefined {
  const r = new ClientHelloReader(max);
  let out: ClientHello | undefined;
  for (let at = 0; at < bytes.length; at += chunk) out = r.push(bytes.subarray(at, at + chunk)) ?? out;
  return out;
}

function refused(bytes: Buffer, pattern: RegExp, max?: number): void {
  let err: unknown;
  try {
    read(bytes, bytes.length, max);
  } catch (e) {
    err = e;
  }
  expect(err, "expected the bytes to be refused").to.be.instanceOf(ClientHelloError);
  expect((err as ClientHelloError).code).to.equal("PRX_ERR_CLIENT_HELLO");
  expect((err as Error).message).to.match(pattern);
}

const hello = (spec: HelloSpec) => toRecords(buildClientHello(spec));

/** The first bytes a real node TLS client sends (its ClientHello), read by a plain TCP server. */
async function realClientHello(options: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const got = new Promise<Buffer>((resolve) => {
    server.once("connection", (s: Socket) => {
      s.on("error", () => {});
      const chunks: Buffer[] = [];
      s.on("data", (d: Buffer) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all);
          s.destroy();
        }
      });
    });
  });
  const client = tlsConnect({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", rejectUnauthorized: false, ...options });
  client.on("error", () => {});
  try {
    return await got;
  } finally {
    client.destroy();
    server.close();
  }
}

describe("TLS ClientHello reader", () => {
  it("reads the SNI and ALPN of a real node TLS client, whole and one byte at a time", async () => {
    const bytes = await realClientHello({ servername: "DB.Example.com", ALPNProtocols: ["h2", "http/1.1"] });
    for (const chunk of [bytes.length, 1, 7]) {
      const h = read(bytes, chunk)!;
      expect(h.sni).to.equal("db.example.com");
      expect(h.alpn).to.deep.equal(["h2", "http/1.1"]);
      expect(h.legacyVersion).to.equal(0x0303);
      expect(h.supportedVersions).to.include(0x0304);
      expect(h.length).to.equal(bytes.length);
    }
  });

  it("reads a real ClientHello without SNI (a client connecting to an IP)", async () => {
    const h = read(await realClientHello({}))!;
    expect(h.sni).to.equal(undefined);
    expect(h.alpn).to.deep.equal([]);
  });

  it("waits for every byte, then answers the same on later pushes", () => {
    const bytes = hello({ sni: "a.example" });
    const r = new ClientHelloReader();
    for (let i = 0; i < bytes.length - 1; i++) expect(r.push(bytes.subarray(i, i + 1))).to.equal(undefined);
    const h = r.push(bytes.subarray(bytes.length - 1));
    expect(h?.sni).to.equal("a.example");
    expect(r.push(Buffer.from("more"))).to.equal(h);
    expect(r.push(Buffer.alloc(0))).to.equal(h);
  });

  it("reads a ClientHello spread over several records", () => {
    const msg = buildClientHello({ sni: "split.example", alpn: ["postgresql"], padding: 600 });
    for (const size of [1, 3, 100, 512]) {
      const bytes = toRecords(msg, size);
      const h = read(bytes, 13)!;
      expect(h.sni, `records of ${size}`).to.equal("split.example");
      expect(h.alpn).to.deep.equal(["postgresql"]);
      expect(h.length).to.equal(bytes.length);
    }
  });

  it("passes over GREASE cipher suites, extensions and ALPN values", () => {
    const h = read(hello({ sni: "g.example", alpn: ["h2"], grease: true }))!;
    expect(h.sni).to.equal("g.example");
    expect(h.alpn).to.deep.equal(["\x5a\x5a", "h2"]);
    expect(isGrease(0x0a0a)).to.equal(true);
    expect(isGrease(0xfafa)).to.equal(true);
    expect(isGrease(0x0a1a)).to.equal(false);
    expect(isGrease(0x1301)).to.equal(false);
  });

  it("takes a host name with a trailing dot as the same host", () => {
    expect(read(hello({ sni: "Trailing.Example." }))!.sni).to.equal("trailing.example");
  });

  it("reads a ClientHello without extensions and one whose server_name has another name type only", () => {
    expect(read(hello({ noExtensions: true }))).to.deep.include({ sni: undefined, legacyVersion: 0x0303 });
    const otherType = Buffer.from([0, 4, 1, 0, 1, 0x61]); // list of one entry, name_type 1
    expect(read(hello({ extra: [{ type: 0, data: otherType }] }))!.sni).to.equal(undefined);
  });

  it("refuses bytes that are not a TLS handshake at the first byte", () => {
    refused(Buffer.from("GET / HTTP/1.1\r\n"), /not a TLS handshake/);
    const r = new ClientHelloReader();
    expect(() => r.push(Buffer.from([0x15]))).to.throw(ClientHelloError, /not a TLS handshake/);
  });

  it("refuses malformed records", () => {
    const msg = buildClientHello({ sni: "x.example" });
    refused(Buffer.concat([toRecords(msg.subarray(0, 10)), toRecords(msg.subarray(10), 16384, 21)]), /record type 21 before the ClientHello/);
    const v2 = toRecords(msg);
    v2[1] = 2;
    refused(v2, /not a TLS record/);
    refused(Buffer.from([22, 3, 1, 0, 0]), /record of 0 bytes/);
    refused(Buffer.from([22, 3, 1, 0x40, 0x01]), /record of 16385 bytes/);
    refused(toRecords(Buffer.from([2, 0, 0, 0])), /handshake message 2 is not a ClientHello/);
  });

  it("refuses a ClientHello longer than the limit before buffering it", () => {
    // announced length over the limit: refused from the first 4 handshake bytes
    const big = buildClientHello({ padding: 20_000 });
    const r = new ClientHelloReader();
    expect(() => r.push(toRecords(big, 4).subarray(0, 9))).to.throw(ClientHelloError, /longer than 16384 bytes/);
    // records that add up past a smaller limit
    refused(hello({ sni: "x.example", padding: 300 }), /longer than 200 bytes/, 200);
    // a first record that would pass the limit is refused from its header
    const r2 = new ClientHelloReader(100);
    expect(() => r2.push(Buffer.from([22, 3, 1, 0x01, 0x00]))).to.throw(ClientHelloError, /longer than 100/);
  });

  it("refuses malformed ClientHello fields", () => {
    const msg = buildClientHello({ sni: "x.example" });
    const at = (i: number, v: number) => {
      const m = Buffer.from(msg);
      m[i] = v;
      return toRecords(m);
    };
    refused(at(4, 2), /legacy_version 0x203/);
    refused(at(38, 33), /session id longer than 32/);
    const short = Buffer.from(msg.subarray(0, 4 + 70));
    short.writeUIntBE(70, 1, 3);
    refused(toRecords(short), /truncated in cipher_suites/);
    refused(hello({ extra: [{ type: 43, data: Buffer.from([2, 3, 4]) }], versions: [0x0303] }).subarray(0), /repeats extension 43/);
    refused(hello({ extra: [{ type: 0, data: Buffer.from([0, 0]) }] }), /empty server_name list/);
    const two = Buffer.from([0, 8, 0, 0, 1, 0x61, 0, 0, 1, 0x62]);
    refused(hello({ extra: [{ type: 0, data: two }] }), /more than one host_name/);
    refused(hello({ sni: "bad name" }), /invalid SNI host name "bad name"/);
    refused(hello({ sni: "two.dots.." }), /invalid SNI host name/);
    refused(hello({ sni: "." }), /invalid SNI host name/);
    refused(hello({ sni: "[::1]" }), /invalid SNI host name/);
    refused(hello({ sni: "nul\x00byte" }), /invalid SNI host name "nul\?byte"/);
    refused(hello({ extra: [{ type: 0, data: Buffer.from([0, 4, 0, 0, 1, 0x61, 9]) }] }), /bytes after the server_name list/);
    refused(hello({ alpn: [] }), /empty ALPN list/);
    refused(hello({ alpn: [""] }), /empty ALPN protocol name/);
    refused(hello({ extra: [{ type: 16, data: Buffer.from([0, 2, 5, 0x61]) }] }), /truncated in ALPN protocol/);
    refused(hello({ versions: [] }), /malformed supported_versions/);
    // the extensions block says less than what follows it
    const trailing = Buffer.concat([msg, Buffer.from([0])]);
    trailing.writeUIntBE(msg.length - 4 + 1, 1, 3);
    refused(toRecords(trailing), /bytes after the ClientHello extensions/);
    // cipher suites: odd length, none; compression methods: none
    const noSuites = Buffer.from(msg);
    noSuites.writeUInt16BE(3, 4 + 2 + 32 + 1 + 32);
    refused(toRecords(noSuites), /cipher_suites length/);
    const suitesAt = 4 + 2 + 32 + 1 + 32;
    const compAt = suitesAt + 2 + msg.readUInt16BE(suitesAt);
    refused(at(compAt, 0), /without compression methods|truncated/);
  });
});
