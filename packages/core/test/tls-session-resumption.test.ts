import { once } from "node:events";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { expect } from "chai";
import type { CertificateStore } from "@switchyard/core";
import { createTestCa, expectNoActiveConnections, startEchoServer, startProxy, type StartedProxy, type TestServer } from "@switchyard/test-utils";

// TLS listeners resume sessions (tickets); their ticket keys rotate, ending older tickets.
describe("TLS session resumption on listeners", () => {
  const ca = createTestCa("Resumption CA");
  const server = ca.issue({ commonName: "proxy.test" });
  const client = ca.issue({ commonName: "c", client: true });
  let echo: TestServer;
  let started: StartedProxy;
  let store: CertificateStore | undefined;
  beforeEach(async () => {
    echo = await startEchoServer();
  });
  afterEach(async () => {
    await expectNoActiveConnections(started.proxy).finally(() => started.proxy.close({ timeout: 100 }));
    await echo.close();
  });

  async function listen(tls: Record<string, unknown>): Promise<number> {
    started = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: server.cert, key: server.key, ...tls } }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
    });
    started.proxy.hooks.onResolve.tap({ name: "store", stage: -500 }, ({ connection }) => {
      store = started.proxy.certificatesFor(connection);
      return undefined;
    });
    return started.port();
  }

  /** one echo round trip; the session the server sent and whether this one was resumed */
  async function connectOnce(port: number, session?: Buffer): Promise<{ session: Buffer | undefined; reused: boolean }> {
    const s: TLSSocket = tlsConnect({ host: "127.0.0.1", port, servername: "proxy.test", ca: ca.cert, cert: client.cert, key: client.key, ...(session ? { session } : {}) });
    s.on("error", () => {});
    // TLS 1.3 tickets arrive after the handshake, before the server's first application data
    let fresh: Buffer | undefined;
    s.on("session", (t: Buffer) => (fresh = t));
    await once(s, "secureConnect");
    s.write("ping");
    await once(s, "data");
    const reused = s.isSessionReused();
    s.end();
    await once(s, "close");
    return { session: fresh, reused };
  }

  for (const [name, tls] of [
    ["without client certificates", {}],
    ["with verifyClient required", { ca: ca.cert, verifyClient: "required" }],
  ] as const) {
    it(`resumes the session of an earlier connection (${name})`, async () => {
      const port = await listen(tls);
      const first = await connectOnce(port);
      expect(first.reused).to.equal(false);
      expect(first.session).to.not.equal(undefined);
      expect((await connectOnce(port, first.session)).reused).to.equal(true);
    });
  }

  it("rotating the ticket keys ends resumption of older tickets; new ones resume", async () => {
    const port = await listen({ ca: ca.cert, verifyClient: "required" });
    const first = await connectOnce(port);
    store!.rotateTicketKeys();
    const second = await connectOnce(port, first.session);
    expect(second.reused).to.equal(false);
    expect(second.session).to.not.equal(undefined);
    expect((await connectOnce(port, second.session)).reused).to.equal(true);
  });
});
