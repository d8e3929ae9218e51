import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { expect } from "chai";
import { encodeProxyHeaderV1, parseProxyHeader, ProxyTlv, type ProxyHeader } from "@switchyard/core";
import { closedPort, createTestCa, readBytes, startTcpServer, useTcpFixture, waitFor, type TestServer } from "@switchyard/test-utils";
import { buildClientHello, toRecords } from "./client-hello-build.js";

/**
 * A backend that expects a PROXY header (parsed with core's own parser, fed as bytes arrive),
 * records it and the bytes after it, and echoes those bytes.
 */
async function headerBackend(): Promise<TestServer & { headers: ProxyHeader[]; after: Buffer[] }> {
  const headers: ProxyHeader[] = [];
  const after: Buffer[] = [];
  const server = await startTcpServer((s) => {
    let buf = Buffer.alloc(0);
    let i = -1;
    s.on("data", (d: Buffer) => {
      if (i >= 0) {
        after[i] = Buffer.concat([after[i]!, d]);
        s.write(d);
        return;
      }
      buf = Buffer.concat([buf, d]);
      const p = parseProxyHeader(buf); // throws (and fails the test) on a bad header
      if (p.state === "partial") return;
      i = headers.push(p.header) - 1;
      const rest = buf.subarray(p.length);
      after[i] = Buffer.from(rest);
      if (rest.length) s.write(rest);
    });
  });
  return Object.assign(server, { headers, after });
}

describe("PROXY protocol outbound (tcp routes)", () => {
  const clients: Socket[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
  });
  const fx = useTcpFixture();

  async function client(port: number): Promise<Socket> {
    const c = connect({ port, host: "127.0.0.1" });
    c.on("error", () => {});
    clients.push(c);
    await once(c, "connect");
    return c;
  }

  for (const version of ["v1", "v2"] as const) {
    it(`writes a ${version} header with the client's and the listener's address before the client's bytes`, async () => {
      const b = await fx.serve(headerBackend());
      const p = await fx.proxyTo([`127.0.0.1:${b.port}`], {
        routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${b.port}`], options: { proxyProtocol: version } }],
      });
      const c = await client(p.port());
      c.write("payload");
      expect((await readBytes(c, 7)).toString()).to.equal("payload");
      const h = b.headers[0]!;
      expect(h.version).to.equal(version === "v1" ? 1 : 2);
      expect(h.command).to.equal("PROXY");
      expect(h.family).to.equal("TCP4");
      expect(h.source).to.deep.equal({ address: "127.0.0.1", port: c.localPort });
      expect(h.destination).to.deep.equal({ address: "127.0.0.1", port: p.port() });
      expect(b.after[0]!.toString()).to.equal("payload");
    });
  }

  it("carries the SNI of a passthrough listener in the v2 AUTHORITY TLV, then the ClientHello untouched", async () => {
    const b = await fx.serve(headerBackend());
    const p = await fx.start({
      listeners: [{ name: "sni", protocol: "tcp", port: 0, options: { tlsPassthrough: true } }],
      routes: [{ name: "r", listener: "sni", match: { sni: "*.example" }, targets: [`127.0.0.1:${b.port}`], options: { proxyProtocol: "v2" } }],
    });
    const hello = toRecords(buildClientHello({ sni: "db.example" }));
    const c = await client(p.port());
    c.write(hello);
    await waitFor(() => b.after[0]?.length === hello.length);
    expect(b.headers[0]!.authority).to.equal("db.example");
    expect(b.headers[0]!.tlvs.map((t) => t.type)).to.deep.equal([ProxyTlv.AUTHORITY]);
    expect(b.after[0]!.equals(hello)).to.equal(true);
  });

  it("passes on the client address an inbound header gave, and that header's destination", async () => {
    const b = await fx.serve(headerBackend());
    const p = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0, proxyProtocol: { trustedProxies: ["127.0.0.1"] } }],
      routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${b.port}`], options: { proxyProtocol: "v2" } }],
    });
    const c = await client(p.port());
    c.write(Buffer.concat([encodeProxyHeaderV1({ source: { address: "203.0.113.4", port: 999 }, destination: { address: "198.51.100.1", port: 5432 } }), Buffer.from("x")]));
    expect((await readBytes(c, 1)).toString()).to.equal("x");
    expect(b.headers[0]!.source).to.deep.equal({ address: "203.0.113.4", port: 999 });
    expect(b.headers[0]!.destination).to.deep.equal({ address: "198.51.100.1", port: 5432 });
  });

  it("writes the header once, to the target that answered, after a failed connect", async () => {
    const b = await fx.serve(headerBackend());
    const dead = await closedPort();
    const p = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
      routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${dead}`, `127.0.0.1:${b.port}`], options: { proxyProtocol: "v1" } }],
      plugins: [
        {
          name: "RetryOnce",
          apply(proxy) {
            proxy.hooks.onUpstreamResponse.tap("RetryOnce", (res) => {
              if (res.error && res.attempt === 1) res.retry = { delayMs: 0, reason: "test" };
              return res;
            });
          },
        },
      ],
    });
    // round-robin starts with the dead target
    const c = await client(p.port());
    c.write("once");
    expect((await readBytes(c, 4)).toString()).to.equal("once");
    expect(b.headers).to.have.length(1);
    expect(b.after[0]!.toString()).to.equal("once");
  });

  it("terminates TLS and still sends the header to a plain backend (route on a certificate listener)", async () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "t.example" });
    const b = await fx.serve(headerBackend());
    const p = await fx.start({
      listeners: [{ name: "tls", protocol: "tcp", port: 0, tls: { cert: leaf.cert, key: leaf.key } }],
      routes: [{ name: "r", listener: "tls", targets: [`127.0.0.1:${b.port}`], options: { proxyProtocol: "v2" } }],
    });
    const tls = tlsConnect({ port: p.port(), host: "127.0.0.1", servername: "t.example", ca: ca.cert });
    tls.on("error", () => {});
    clients.push(tls);
    await once(tls, "secureConnect");
    tls.write("secret");
    expect((await readBytes(tls, 6)).toString()).to.equal("secret");
    expect(b.headers[0]!.authority).to.equal("t.example");
  });
});
