import { once } from "node:events";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { expect } from "chai";
import { connect } from "node:net";
import type { ConnectionInfo, ListenerTls } from "@switchyard/core";
import {
  configErrorMessage,
  createTestCa,
  expectNoActiveConnections,
  startEchoServer,
  startProxy,
  type StartedProxy,
  type TestCa,
  type TestServer,
} from "@switchyard/test-utils";
import { Proxy } from "@switchyard/core";

// TLS listeners (terminated in place on the accepted socket, which has no tls.Server behind it):
// client-initiated renegotiation is refused, and the protocol versions and cipher suites are
// listener options with a default that has no static-RSA key exchange.
describe("TLS listener options", () => {
  let ca: TestCa;
  let echo: TestServer;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
  });
  beforeEach(async () => {
    echo = await startEchoServer();
  });
  const proxies: Proxy[] = [];
  const clients: TLSSocket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    for (const p of proxies.splice(0)) {
      try {
        await expectNoActiveConnections(p);
      } finally {
        await p.close({ timeout: 100 });
      }
    }
    await echo.close();
  });

  async function tlsProxy(tls: Partial<ListenerTls> = {}): Promise<StartedProxy & { opened: Array<Record<string, unknown>>; closed: Array<Record<string, unknown>>; reasons: string[] }> {
    const leaf = ca.issue({ commonName: "a.test" });
    const started = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: leaf.cert, key: leaf.key, ...tls } }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
    });
    proxies.push(started.proxy);
    // what a log line written at the event shows (the info object itself changes later)
    const opened: Array<Record<string, unknown>> = [];
    const closed: Array<Record<string, unknown>> = [];
    const reasons: string[] = [];
    started.proxy.events.on("connectionOpen", (info) => opened.push(snapshot(info)));
    started.proxy.events.on("connectionClose", (c, info) => {
      closed.push(snapshot(c));
      reasons.push(info.reason);
    });
    return { ...started, opened, closed, reasons };
  }

  /** A TLS client; resolves once the handshake is done, rejects when it fails. */
  async function client(port: number, options: ConnectionOptions = {}): Promise<TLSSocket> {
    const c = tlsConnect({ port, host: "127.0.0.1", servername: "a.test", ca: ca.cert, ...options });
    clients.push(c);
    c.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      c.once("secureConnect", resolve);
      c.once("error", reject);
      c.once("close", () => reject(new Error("closed before the handshake completed")));
    });
    return c;
  }

  async function echoes(c: TLSSocket, text: string): Promise<boolean> {
    c.write(text);
    let got = "";
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 2000);
      c.on("data", (d: Buffer) => {
        got += d.toString();
        if (got === text) {
          clearTimeout(t);
          resolve(true);
        }
      });
      c.once("close", () => {
        clearTimeout(t);
        resolve(false);
      });
    });
  }

  /** Asks for a renegotiation; resolves with the error it ended in (undefined: it succeeded). */
  function renegotiate(c: TLSSocket): Promise<Error | undefined> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (err: Error | undefined) => {
        if (settled) return;
        settled = true;
        resolve(err);
      };
      c.once("close", () => settle(new Error("connection closed")));
      const started = c.renegotiate({ rejectUnauthorized: true }, (err) => settle(err ?? undefined));
      if (!started) settle(new Error("renegotiation not started"));
      // a refused renegotiation may only show when the next record is read
      c.write("x");
    });
  }

  it("refuses client-initiated renegotiation (TLS 1.2) and keeps serving other clients", async () => {
    const p = await tlsProxy();
    const c = await client(p.port(), { maxVersion: "TLSv1.2" });
    expect(await echoes(c, "before")).to.equal(true);
    const err = await renegotiate(c);
    expect(err, "a renegotiation was accepted").to.be.instanceOf(Error);
    c.destroy();
    // the listener still serves
    const d = await client(p.port(), { maxVersion: "TLSv1.2" });
    expect(await echoes(d, "after")).to.equal(true);
    d.end();
    await once(d, "close");
  });

  it("reports tls: true at connection.open of a TLS listener's connection, and its SNI once known", async () => {
    const p = await tlsProxy();
    const c = await client(p.port());
    expect(await echoes(c, "hi")).to.equal(true);
    c.end();
    await once(c, "close");
    await expectNoActiveConnections(p.proxy);
    expect(p.opened).to.have.length(1);
    expect(p.opened[0]).to.include({ tls: true, listener: "t" });
    expect(p.closed[0]).to.include({ tls: true, servername: "a.test" });
  });

  it("reports tls: false at connection.open of a plaintext listener's connection", async () => {
    const started = await startProxy({
      listeners: [{ name: "plain", protocol: "tcp", port: 0 }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
    });
    proxies.push(started.proxy);
    const opened: Array<Record<string, unknown>> = [];
    started.proxy.events.on("connectionOpen", (info) => opened.push(snapshot(info)));
    const s = connect(started.port(), "127.0.0.1");
    s.on("error", () => {});
    await once(s, "connect");
    s.end();
    await once(s, "close");
    await expectNoActiveConnections(started.proxy);
    expect(opened[0]).to.include({ tls: false, listener: "plain" });
  });

  it("refuses a client that offers only a static-RSA suite by default, and serves TLS 1.2 with ECDHE", async () => {
    const p = await tlsProxy();
    let refused: unknown;
    try {
      await client(p.port(), { maxVersion: "TLSv1.2", ciphers: "AES128-SHA256" });
    } catch (err) {
      refused = err;
    }
    expect(refused, "a static-RSA handshake was accepted").to.be.instanceOf(Error);
    const c = await client(p.port(), { maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256" });
    expect(c.getProtocol()).to.equal("TLSv1.2");
    expect(c.getCipher().name).to.equal("ECDHE-RSA-AES128-GCM-SHA256");
    expect(await echoes(c, "ok")).to.equal(true);
    c.end();
    await once(c, "close");
    await expectNoActiveConnections(p.proxy);
    expect(p.reasons[0]).to.equal("client-error");
  });

  it("minVersion TLSv1.3 refuses a TLS 1.2 client and serves a TLS 1.3 one", async () => {
    const p = await tlsProxy({ minVersion: "TLSv1.3" });
    let refused: unknown;
    try {
      await client(p.port(), { maxVersion: "TLSv1.2" });
    } catch (err) {
      refused = err;
    }
    expect(refused, "a TLS 1.2 handshake was accepted").to.be.instanceOf(Error);
    const c = await client(p.port());
    expect(c.getProtocol()).to.equal("TLSv1.3");
    expect(await echoes(c, "ok")).to.equal(true);
    c.end();
    await once(c, "close");
  });

  it("takes the listener's own ciphers and honorCipherOrder (the server's order wins)", async () => {
    const p = await tlsProxy({
      ciphers: "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
      honorCipherOrder: true,
    });
    const c = await client(p.port(), { maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384" });
    expect(c.getCipher().name).to.equal("ECDHE-RSA-AES256-GCM-SHA384");
    c.end();
    await once(c, "close");
  });

  it("checks minVersion, ciphers and honorCipherOrder when the proxy is built", () => {
    const leaf = ca.issue({ commonName: "a.test" });
    const build = (tls: Record<string, unknown>) => () =>
      new Proxy({ listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: leaf.cert, key: leaf.key, ...tls } as ListenerTls }] });
    expect(configErrorMessage(build({ minVersion: "TLSv1.1" }))).to.match(/listener "t": tls\.minVersion must be "TLSv1\.2" or "TLSv1\.3"/);
    expect(configErrorMessage(build({ minVersion: 12 }))).to.match(/tls\.minVersion/);
    expect(configErrorMessage(build({ ciphers: "" }))).to.match(/tls\.ciphers must be a non-empty string/);
    expect(configErrorMessage(build({ ciphers: "NOT-A-CIPHER" }))).to.match(/listener "t": tls: .*cipher/i);
    expect(configErrorMessage(build({ honorCipherOrder: "yes" }))).to.match(/tls\.honorCipherOrder must be a boolean/);
  });
});

function snapshot(info: ConnectionInfo): Record<string, unknown> {
  return JSON.parse(JSON.stringify(info)) as Record<string, unknown>;
}
