import { once } from "node:events";
import { expect } from "chai";
import pg from "pg";
import mysql from "mysql2/promise";
import type { CloseReason, ListenerTls, ProxyPlugin, RouteConfig } from "@switchyard/core";
import { MysqlProtocol, PostgresProtocol } from "@switchyard/protocol-tcp";
import { MtlsPlugin } from "@switchyard/plugin-mtls";
import { expectNoActiveConnections, startEchoServer, startProxy, startTcpServer, waitFor, type StartedProxy, type TestServer } from "@switchyard/test-utils";
import { buildPki, pingThrough, tlsClient, type Pki } from "./fixtures.js";

describe("client identity on L4 listeners", () => {
  let p: Pki;
  let echo: TestServer;
  let started: StartedProxy | undefined;
  const servers: TestServer[] = [];
  before(function () {
    this.timeout(60_000);
    p = buildPki();
  });
  beforeEach(async () => {
    echo = await startEchoServer();
  });
  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    started = undefined;
    await echo.close();
    for (const s of servers.splice(0)) await s.close();
  });

  async function tcpProxy(tls: Partial<ListenerTls>, routes: RouteConfig[], plugins: ProxyPlugin[] = [new MtlsPlugin()]) {
    started = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: p.server.cert, key: p.server.key, ca: p.ca.cert, ...tls } }],
      routes,
      plugins,
    });
    const reasons: CloseReason[] = [];
    started.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    return { port: started.port(), reasons };
  }

  async function banner(text: string): Promise<TestServer> {
    const s = await startTcpServer((socket) => socket.end(text));
    servers.push(s);
    return s;
  }

  it("routes a TCP connection by clientSan / clientSubject, and logs the identity with the connection", async () => {
    const a = await banner("tenant-a");
    const b = await banner("tenant-b");
    const { port } = await tcpProxy({ verifyClient: "required" }, [
      { name: "a", match: { clientSan: "spiffe://prod.test/tenant-a/*" }, targets: [`127.0.0.1:${a.port}`] },
      { name: "b", match: { clientSubject: "O=Tenant B,CN=*" }, targets: [`127.0.0.1:${b.port}`] },
    ]);
    const closes: Array<Record<string, unknown>> = [];
    started!.proxy.events.on("connectionClose", (c) => closes.push(JSON.parse(JSON.stringify(c)) as Record<string, unknown>));
    expect(await pingThrough(port, p, p.alice)).to.equal("tenant-a");
    expect(await pingThrough(port, p, p.bob)).to.equal("tenant-b");
    await waitFor(() => closes.length === 2, 3000, "two closes");
    expect(closes.map((c) => (c["clientCert"] as { subject: string; verified: boolean }).subject).sort()).to.deep.equal(["O=Tenant A,CN=alice", "O=Tenant B,CN=bob"]);
    expect(closes.every((c) => (c["clientCert"] as { verified: boolean }).verified)).to.equal(true);
  });

  it("closes a TCP connection whose certificate the route's allow-list lacks (no-route), relays an allowed one", async () => {
    const { port, reasons } = await tcpProxy({ verifyClient: "optional" }, [
      { name: "r", targets: [`127.0.0.1:${echo.port}`], options: { mtls: { allowSubjects: ["*,CN=alice"] } } },
    ]);
    expect(await pingThrough(port, p, p.alice)).to.equal("ping");
    expect(await pingThrough(port, p, p.bob)).to.equal("");
    expect(await pingThrough(port, p, undefined)).to.equal("");
    expect(await pingThrough(port, p, p.stranger)).to.equal("");
    await waitFor(() => reasons.length === 4, 3000, "four closes");
    expect(reasons.slice(1)).to.deep.equal(["no-route", "no-route", "no-route"]);
    expect(echo.accepted).to.equal(1);
  });

  it("a CRL reload refuses the revoked certificate from then on, keeps the connection it already relays, and a bad CRL changes nothing", async () => {
    const tls = { cert: p.server.cert, key: p.server.key, ca: p.ca.cert, verifyClient: "required" as const };
    const { port } = await tcpProxy({ crl: p.emptyCrl, verifyClient: "required" }, [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }], []);
    const live = await tlsClient(port, p, p.revoked);
    live.write("one");
    expect(((await once(live, "data")) as [Buffer])[0].toString()).to.equal("one");
    started!.proxy.reconfigureListener("t", { tls: { ...tls, crl: p.crl } });
    expect(await pingThrough(port, p, p.revoked)).to.equal("");
    expect(await pingThrough(port, p, p.alice)).to.equal("ping");
    live.write("two");
    expect(((await once(live, "data")) as [Buffer])[0].toString()).to.equal("two");
    expect(() => started!.proxy.reconfigureListener("t", { tls: { ...tls, crl: "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n" } })).to.throw(/listener "t": tls/);
    expect(await pingThrough(port, p, p.revoked)).to.equal("");
    expect(await pingThrough(port, p, p.alice)).to.equal("ping");
    live.end();
    await once(live, "close");
  });

  it("resumes a TLS session on a second connection (session tickets), with the client identity it was made with", async () => {
    // only a connection with alice's identity has a route: the resumed one must carry it
    const { port } = await tcpProxy({ verifyClient: "required" }, [{ name: "r", match: { clientSan: "spiffe://prod.test/tenant-a/web" }, targets: [`127.0.0.1:${echo.port}`] }], []);
    const first = await tlsClient(port, p, p.alice);
    const [session] = (await once(first, "session")) as [Buffer];
    expect(first.isSessionReused()).to.equal(false);
    first.end();
    await once(first, "close");
    const second = await tlsClient(port, p, p.alice, session);
    expect(second.isSessionReused()).to.equal(true);
    second.write("ping");
    expect(((await once(second, "data")) as [Buffer])[0].toString()).to.equal("ping");
    second.end();
    await once(second, "close");
  });

  describe("PostgreSQL (SSLRequest, then TLS in place)", () => {
    const target = "127.0.0.1:5432";
    async function pgProxy(): Promise<number> {
      started = await startProxy({
        listeners: [{ name: "pg", protocol: "postgres", port: 0, tls: { cert: p.server.cert, key: p.server.key, ca: p.ca.cert, verifyClient: "optional" } }],
        routes: [
          { name: "tenant-a", match: { database: "test" }, targets: [target], options: { mtls: { allowSans: ["spiffe://prod.test/tenant-a/*"] } } },
        ],
        plugins: [new PostgresProtocol(), new MtlsPlugin()],
      });
      return started.port();
    }
    function client(port: number, cert: { cert: string; key: string } | undefined): pg.Client {
      const c = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "test", ssl: { ca: p.ca.cert, ...(cert ?? {}) } });
      c.on("error", () => {});
      return c;
    }

    it("lets a client whose certificate the route allows in, and answers 28000 to others", async () => {
      const port = await pgProxy();
      const ok = client(port, p.alice);
      await ok.connect();
      expect((await ok.query("select 6*7 as n")).rows[0].n).to.equal(42);
      await ok.end();
      for (const cert of [p.bob, undefined, p.stranger]) {
        const c = client(port, cert);
        const err = (await c.connect().then(
          () => undefined,
          (e: unknown) => e,
        )) as { code?: string } | undefined;
        expect(err?.code).to.equal("28000");
        await c.end().catch(() => {});
      }
    });
  });

  describe("MySQL (CLIENT_SSL, then TLS in place)", () => {
    it("lets a client whose certificate the route allows in, and answers ERR 1045 / 28000 to others", async () => {
      started = await startProxy({
        listeners: [{ name: "my", protocol: "mysql", port: 0, tls: { cert: p.server.cert, key: p.server.key, ca: p.ca.cert, verifyClient: "optional" } }],
        routes: [{ name: "r", targets: ["127.0.0.1:3306"], options: { mtls: { allowSubjects: ["*,CN=alice"] } } }],
        plugins: [new MysqlProtocol(), new MtlsPlugin()],
      });
      const connect = (cert: { cert: string; key: string } | undefined) =>
        mysql.createConnection({ host: "127.0.0.1", port: started!.port(), user: "root", password: "", connectTimeout: 10_000, ssl: { ca: p.ca.cert, ...(cert ?? {}) } });
      const ok = await connect(p.alice);
      const [rows] = await ok.query("select 6*7 as n");
      expect((rows as Array<{ n: number }>)[0]!.n).to.equal(42);
      await ok.end();
      for (const cert of [p.bob, undefined]) {
        const err = (await connect(cert).then(
          async (c) => (await c.end(), undefined),
          (e: unknown) => e,
        )) as { errno?: number; sqlState?: string } | undefined;
        expect([err?.errno, err?.sqlState]).to.deep.equal([1045, "28000"]);
      }
    });
  });
});
