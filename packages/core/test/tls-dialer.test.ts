import { once } from "node:events";
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { dial, SsrfBlockedError, UpstreamConnectError, UpstreamTimeoutError, IpMatcher } from "@switchyard/core";
import {
  closedPort,
  createTestCa,
  expectNoActiveConnections,
  readAll,
  readBytes,
  startBlackhole,
  startEchoServer,
  startProxy,
  waitClose,
  waitFor,
  type TestCa,
} from "@switchyard/test-utils";

describe("TLS termination", () => {
  let ca: TestCa;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
  });

  it("terminates TLS on a tcp listener and picks the certificate by SNI", async () => {
    const backend = await startEchoServer();
    const def = ca.issue({ commonName: "default.test" });
    const api = ca.issue({ commonName: "api.test" });
    const wild = ca.issue({ commonName: "*.apps.test" });
    const { proxy, port } = await startProxy({
      listeners: [
        {
          name: "tls",
          protocol: "tcp",
          port: 0,
          tls: { ...def, sni: { "api.test": api, "*.apps.test": wild } },
        },
      ],
      routes: [{ name: "api", match: { sni: "api.test" }, targets: [`127.0.0.1:${backend.port}`] }, { name: "any", targets: [`127.0.0.1:${backend.port}`] }],
    });
    const names: string[] = [];
    for (const servername of ["api.test", "x.apps.test", "other.test"]) {
      const s: TLSSocket = tlsConnect({ port: port(), host: "127.0.0.1", servername, ca: ca.cert, rejectUnauthorized: false });
      s.on("error", () => {});
      await once(s, "secureConnect");
      names.push(s.getPeerCertificate().subject.CN as string);
      s.write("ping");
      expect((await readBytes(s, 4)).toString()).to.equal("ping");
      s.end();
      await waitClose(s);
    }
    expect(names).to.deep.equal(["api.test", "*.apps.test", "default.test"]);
    await expectNoActiveConnections(proxy);
    expect(proxy.stats().routes.api?.total).to.equal(1);
    expect(proxy.stats().routes.any?.total).to.equal(2);
    await proxy.close();
    await backend.close();
  });

  it("closes a client that never finishes the TLS handshake at the handshake deadline", async () => {
    const { proxy, port } = await startProxy({
      listeners: [{ name: "tls", protocol: "tcp", port: 0, tls: ca.issue({ commonName: "x.test" }), timeouts: { handshake: 150 } }],
      routes: [{ targets: ["127.0.0.1:1"] }],
    });
    const { connectTo } = await import("@switchyard/test-utils");
    const c = await connectTo(port());
    c.write("not a client hello at all, just waiting");
    await waitClose(c, 2000);
    await expectNoActiveConnections(proxy);
    await proxy.close();
  });
});

describe("TLS handshake aborted by the client", () => {
  let ca: TestCa;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
  });

  // the first bytes of a TLS 1.2+ ClientHello record: a handshake the proxy starts and never sees finished
  const partialHello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03]);
  for (const [how, bytes, end] of [
    ["FIN after part of a ClientHello", partialHello, "fin"],
    ["FIN before any byte", Buffer.alloc(0), "fin"],
    ["reset after part of a ClientHello", partialHello, "reset"],
  ] as const) {
    it(`releases the connection at once on a ${how}, not at the handshake deadline`, async () => {
      const { proxy, port } = await startProxy({
        listeners: [{ name: "tls", protocol: "tcp", port: 0, tls: ca.issue({ commonName: "x.test" }), timeouts: { handshake: 10_000 } }],
        routes: [{ targets: ["127.0.0.1:1"] }],
      });
      const { connectTo } = await import("@switchyard/test-utils");
      const c = await connectTo(port());
      if (bytes.length > 0) c.write(bytes);
      await waitFor(() => proxy.stats().active === 1, 2000, "the connection to be accepted");
      await new Promise((r) => setTimeout(r, 20));
      if (end === "fin") c.end();
      else c.resetAndDestroy();
      await expectNoActiveConnections(proxy, 1000);
      c.destroy();
      await proxy.close();
    });
  }
});

describe("dialer", () => {
  let ca: TestCa;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
  });

  it("refuses loopback, private and metadata targets when guarded, unless allowed", async () => {
    const echo = await startEchoServer();
    for (const host of ["127.0.0.1", "169.254.169.254", "10.1.2.3", "::ffff:127.0.0.1", "localhost"]) {
      const err = await dial({ host, port: echo.port }, { timeoutMs: 500, guard: {} }).then(
        (s) => (s.destroy(), undefined),
        (e: unknown) => e,
      );
      expect(err, host).to.be.instanceOf(SsrfBlockedError);
      expect((err as SsrfBlockedError).code).to.equal("PRX_ERR_SSRF_BLOCKED");
    }
    const ok = await dial({ host: "127.0.0.1", port: echo.port }, { timeoutMs: 500, guard: { allow: new IpMatcher(["127.0.0.0/8"]) } });
    ok.destroy();
    await echo.close();
  });

  it("connects over IPv6 loopback", async () => {
    const { createServer } = await import("node:net");
    const server = createServer((s) => s.end("v6"));
    server.listen(0, "::1");
    await once(server, "listening");
    const s = await dial({ host: "::1", port: (server.address() as AddressInfo).port }, { timeoutMs: 1000 });
    expect((await readAll(s)).toString()).to.equal("v6");
    server.close();
  });

  it("maps refused and timed-out connects to typed errors", async () => {
    const refused = await dial({ host: "127.0.0.1", port: await closedPort() }, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(UpstreamConnectError);
    expect((refused as UpstreamConnectError).code).to.equal("PRX_ERR_UPSTREAM_CONNECT");
    const hole = await startBlackhole();
    const timedOut = await dial({ host: "127.0.0.1", port: hole.port }, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(timedOut).to.be.instanceOf(UpstreamTimeoutError);
    expect((timedOut as UpstreamTimeoutError).code).to.equal("PRX_ERR_UPSTREAM_TIMEOUT");
    await hole.close();
  });

  it("verifies upstream TLS certificates by default and accepts a configured CA", async () => {
    const leaf = ca.issue({ commonName: "backend.test", altNames: ["backend.test", "127.0.0.1"] });
    const server = createTlsServer({ ...leaf }, (s) => s.end("secure"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const untrusted = await dial({ host: "127.0.0.1", port, tls: {} }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(untrusted).to.be.instanceOf(UpstreamConnectError);
    expect(String((untrusted as Error).message)).to.match(/certificate/i);
    const s = await dial({ host: "127.0.0.1", port, tls: { ca: ca.cert, servername: "backend.test" } }, { timeoutMs: 2000 });
    expect((await readAll(s)).toString()).to.equal("secure");
    const wrongName = await dial({ host: "127.0.0.1", port, tls: { ca: ca.cert, servername: "other.test" } }, { timeoutMs: 2000 }).catch(
      (e: unknown) => e,
    );
    expect(wrongName).to.be.instanceOf(UpstreamConnectError);
    server.close();
  });

  it("aborts a dial when its signal fires", async () => {
    const hole = await startBlackhole();
    const ac = new AbortController();
    const p = dial({ host: "127.0.0.1", port: hole.port }, { timeoutMs: 5000, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    const t0 = Date.now();
    const err = await p.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(UpstreamConnectError);
    expect(Date.now() - t0).to.be.below(1000);
    await hole.close();
  });
});
