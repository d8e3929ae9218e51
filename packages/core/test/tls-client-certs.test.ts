import { once } from "node:events";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { expect } from "chai";
import type { ListenerTls } from "@switchyard/core";
import { createTestCa, expectNoActiveConnections, startEchoServer, startProxy, type TestCa, type TestServer } from "@switchyard/test-utils";

// Client certificates on a TLS listener (requestCert). Node verifies them only for sockets of a
// tls.Server; the proxy upgrades accepted sockets in place, and once took a certificate from any
// CA even with rejectUnauthorized: true.
describe("TLS client certificates", () => {
  let ca: TestCa;
  let other: TestCa;
  let echo: TestServer;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
    other = createTestCa("Other");
  });
  beforeEach(async () => {
    echo = await startEchoServer();
  });
  const proxies: Array<{ close(o?: { timeout?: number }): Promise<void> }> = [];
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close({ timeout: 100 });
    await echo.close();
  });

  async function proxyWith(tls: Partial<ListenerTls>) {
    const leaf = ca.issue({ commonName: "a.test" });
    const started = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: leaf.cert, key: leaf.key, ca: ca.cert, requestCert: true, ...tls } }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
    });
    proxies.push(started.proxy);
    const seen: Array<{ authorized: boolean; error: unknown }> = [];
    started.proxy.hooks.onResolve.tap({ name: "peek", stage: -500 }, ({ connection }) => {
      const s = connection.socket as TLSSocket;
      seen.push({ authorized: s.authorized, error: s.authorizationError ?? null });
      return undefined;
    });
    const reasons: string[] = [];
    started.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    return { ...started, seen, reasons };
  }

  /** Connects with a client certificate from `issuer` (none when undefined); what came back. */
  async function roundTrip(port: number, issuer: TestCa | undefined): Promise<string> {
    const cert = issuer?.issue({ commonName: "client", client: true });
    const c = tlsConnect({ port, host: "127.0.0.1", servername: "a.test", ca: ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) });
    c.on("error", () => {});
    let got = "";
    c.once("secureConnect", () => c.write("ping"));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1500);
      const done = () => (clearTimeout(t), resolve());
      c.on("data", (d: Buffer) => {
        got += d.toString();
        if (got === "ping") done();
      });
      c.once("close", done);
    });
    c.destroy();
    return got;
  }

  it("relays a client whose certificate the listener's CA issued, marked authorized", async () => {
    const p = await proxyWith({ rejectUnauthorized: true });
    const c = tlsConnect({ port: p.port(), host: "127.0.0.1", servername: "a.test", ca: ca.cert, ...pick(ca.issue({ commonName: "alice", client: true })) });
    c.on("error", () => {});
    await once(c, "secureConnect");
    c.write("ping");
    const [d] = (await once(c, "data")) as [Buffer];
    expect(d.toString()).to.equal("ping");
    expect(p.seen).to.deep.equal([{ authorized: true, error: null }]);
    c.end();
    await once(c, "close");
    await expectNoActiveConnections(p.proxy);
  });

  it("refuses a certificate from another CA with rejectUnauthorized: true, before routing", async () => {
    const p = await proxyWith({ rejectUnauthorized: true });
    expect(await roundTrip(p.port(), other)).to.equal("");
    expect(await roundTrip(p.port(), undefined)).to.equal("");
    expect(echo.accepted).to.equal(0);
    expect(p.seen).to.deep.equal([]);
    await expectNoActiveConnections(p.proxy);
    expect(p.reasons).to.deep.equal(["client-error", "client-error"]);
  });

  it("lets such a client through with rejectUnauthorized: false, marked unauthorized with the reason", async () => {
    const p = await proxyWith({ rejectUnauthorized: false });
    expect(await roundTrip(p.port(), other)).to.equal("ping");
    expect(p.seen).to.have.length(1);
    expect(p.seen[0]!.authorized).to.equal(false);
    expect(String(p.seen[0]!.error)).to.match(/UNABLE_TO_VERIFY|SELF_SIGNED|CERT/);
    await expectNoActiveConnections(p.proxy);
  });
});

function pick(c: { cert: string; key: string }): { cert: string; key: string } {
  return { cert: c.cert, key: c.key };
}
