import { once } from "node:events";
import { connect as tlsConnect } from "node:tls";
import { expect } from "chai";
import { parseProxyHeader, Proxy, silentLogger, type ClientIdentity, type ListenerTls, type MatchKeyKind, type RouteKey } from "@switchyard/core";
import { configErrorMessage, createTestCa, expectNoActiveConnections, startEchoServer, startProxy, startTcpServer, waitFor, type CertPair, type StartedProxy, type TestCa, type TestServer } from "@switchyard/test-utils";
import { parseSubjectAltName } from "../dist/client-identity.js";

describe("client identity", () => {
  let ca: TestCa;
  let foreign: TestCa;
  let server: CertPair;
  let echo: TestServer;
  let started: StartedProxy | undefined;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa("Identity CA");
    foreign = createTestCa("Foreign CA");
    server = ca.issue({ commonName: "proxy.test" });
  });
  beforeEach(async () => {
    echo = await startEchoServer();
  });
  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    started = undefined;
    await echo.close();
  });

  /** a TLS listener whose onResolve peek records each connection's identity */
  async function listener(tls: Partial<ListenerTls>): Promise<{ port: number; seen: Array<ClientIdentity | undefined> }> {
    started = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: server.cert, key: server.key, ca: ca.cert, ...tls } }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
    });
    const seen: Array<ClientIdentity | undefined> = [];
    started.proxy.hooks.onResolve.tap({ name: "peek", stage: -500 }, ({ connection }) => {
      seen.push(connection.info.identity);
      return undefined;
    });
    return { port: started.port(), seen };
  }

  async function roundTrip(port: number, cert: CertPair | undefined): Promise<string> {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "proxy.test", ca: ca.cert, ...(cert ?? {}) });
    s.on("error", () => {});
    s.write("ping");
    const got = await new Promise<string>((resolve) => {
      const t = setTimeout(() => resolve(""), 3000);
      s.once("data", (d: Buffer) => (clearTimeout(t), resolve(d.toString())));
      s.once("close", () => (clearTimeout(t), resolve("")));
    });
    s.destroy();
    if (!s.closed) await once(s, "close");
    return got;
  }

  it("fills subject, issuer, SANs, serial, validity and fingerprint of a verified certificate", async () => {
    const { port, seen } = await listener({ verifyClient: "required" });
    const alice = ca.issue({ commonName: "alice", client: true, subject: { O: "Example, Inc." }, altNames: ["URI:spiffe://td/ns/a", "DNS:a.test", "email:a@a.test", "IP:10.1.2.3"] });
    expect(await roundTrip(port, alice)).to.equal("ping");
    const id = seen[0]!;
    expect(id.verified).to.equal(true);
    expect(id.verifyError).to.equal(undefined);
    expect(id.subject).to.equal("O=Example\\, Inc.,CN=alice");
    expect(id.commonName).to.equal("alice");
    expect(id.issuer).to.equal("CN=Identity CA");
    expect(id.sans).to.deep.equal({ dns: ["a.test"], uri: ["spiffe://td/ns/a"], email: ["a@a.test"], ip: ["10.1.2.3"] });
    expect(id.serialNumber).to.match(/^[0-9a-f]+$/);
    expect(Date.parse(id.validTo) - Date.parse(id.validFrom)).to.equal(30 * 86_400_000);
    expect(id.fingerprint256).to.match(/^[0-9a-f]{64}$/);
  });

  it("optional: no certificate leaves no identity; a foreign one is kept unverified with the reason", async () => {
    const { port, seen } = await listener({ verifyClient: "optional" });
    expect(await roundTrip(port, undefined)).to.equal("ping");
    expect(await roundTrip(port, foreign.issue({ commonName: "eve", client: true }))).to.equal("ping");
    expect(seen[0]).to.equal(undefined);
    expect(seen[1]).to.include({ verified: false, verifyError: "UNABLE_TO_VERIFY_LEAF_SIGNATURE", tolerated: false, subject: "CN=eve" });
  });

  it("optional-no-ca tolerates an unknown issuer only", async () => {
    const { port, seen } = await listener({ verifyClient: "optional-no-ca" });
    expect(await roundTrip(port, foreign.issue({ commonName: "eve", client: true }))).to.equal("ping");
    expect(await roundTrip(port, ca.issue({ commonName: "old", client: true, notBefore: new Date(Date.now() - 3 * 86_400_000), days: 1 }))).to.equal("ping");
    expect(seen.map((i) => [i?.verifyError, i?.tolerated])).to.deep.equal([
      ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", true],
      ["CERT_HAS_EXPIRED", false],
    ]);
  });

  it("required: a revoked certificate (crl) is closed before routing", async () => {
    const mallory = ca.issue({ commonName: "mallory", client: true });
    const { port, seen } = await listener({ verifyClient: "required", crl: ca.crl([mallory.cert]) });
    expect(await roundTrip(port, mallory)).to.equal("");
    expect(await roundTrip(port, ca.issue({ commonName: "alice", client: true }))).to.equal("ping");
    expect(seen.map((i) => i?.subject)).to.deep.equal(["CN=alice"]);
  });

  it("sends the client's TLS and certificate CN in a PROXY v2 SSL TLV when the route sends PROXY v2", async () => {
    const received: Buffer[] = [];
    const backend = await startTcpServer((socket) => socket.on("data", (d: Buffer) => received.push(d)));
    try {
      started = await startProxy({
        listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: server.cert, key: server.key, ca: ca.cert, verifyClient: "optional" } }],
        routes: [{ name: "r", targets: [`127.0.0.1:${backend.port}`], options: { proxyProtocol: "v2" } }],
      });
      const ssl = async (cert: CertPair | undefined) => {
        received.length = 0;
        const s = tlsConnect({ host: "127.0.0.1", port: started!.port(), servername: "proxy.test", ca: ca.cert, ...(cert ?? {}) });
        s.on("error", () => {});
        await once(s, "secureConnect");
        s.write("x");
        await waitFor(() => Buffer.concat(received).includes("x"), 3000, "the relayed byte");
        s.destroy();
        const parsed = parseProxyHeader(Buffer.concat(received));
        if (parsed.state !== "done") throw new Error("no PROXY header");
        const t = parsed.header.tlvs.find((e) => e.type === 0x20)!.value;
        const subs = new Map<number, string>();
        for (let at = 5; at < t.length; at += 3 + t.readUInt16BE(at + 1)) subs.set(t[at]!, t.subarray(at + 3, at + 3 + t.readUInt16BE(at + 1)).toString());
        return { client: t[0], verify: t.readUInt32BE(1), subs };
      };
      const withCert = await ssl(ca.issue({ commonName: "alice", client: true }));
      expect(withCert.client).to.equal(0x03);
      expect(withCert.verify).to.equal(0);
      expect(withCert.subs.get(0x22)).to.equal("alice");
      expect(withCert.subs.get(0x21)).to.equal("TLSv1.3");
      expect(withCert.subs.get(0x23)).to.match(/^TLS_/);
      const without = await ssl(undefined);
      expect([without.client, without.verify, without.subs.has(0x22)]).to.deep.equal([0x01, 1, false]);
      const foreignCert = await ssl(foreign.issue({ commonName: "eve", client: true }));
      expect([foreignCert.client, foreignCert.verify, foreignCert.subs.get(0x22)]).to.deep.equal([0x03, 1, "eve"]);
    } finally {
      await backend.close();
    }
  });

  it("checks verifyClient, crl and the ca they need when the proxy is built", () => {
    const make = (tls: Partial<ListenerTls>) => () =>
      new Proxy({ listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: server.cert, key: server.key, ...tls } }], logger: silentLogger });
    expect(configErrorMessage(make({ verifyClient: "sometimes" as "optional", ca: ca.cert }))).to.match(/tls\.verifyClient must be "required", "optional", "optional-no-ca"/);
    expect(configErrorMessage(make({ verifyClient: "required" }))).to.match(/tls\.ca is needed to verify client certificates/);
    expect(configErrorMessage(make({ crl: ca.crl() , ca: ca.cert }))).to.match(/tls\.crl is used only with verifyClient/);
    expect(configErrorMessage(make({ verifyClient: "required", ca: ca.cert, crl: "-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n" }))).to.match(/listener "t": tls/);
    expect(make({ verifyClient: "optional-no-ca" })).to.not.throw();
  });

  it("reads Node's subjectAltName text, quoted values included", () => {
    expect(parseSubjectAltName('DNS:a.test, URI:"spiffe://td/a,b", email:x@y.test, IP Address:::1, othername:<unsupported>')).to.deep.equal({
      dns: ["a.test"],
      uri: ["spiffe://td/a,b"],
      email: ["x@y.test"],
      ip: ["::1"],
    });
    expect(parseSubjectAltName(undefined)).to.deep.equal({ dns: [], uri: [], email: [], ip: [] });
  });

  it("gives a resolver the verified identity in the key, and its cache keys by it", async () => {
    const asked: RouteKey[] = [];
    started = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, tls: { cert: server.cert, key: server.key, ca: ca.cert, verifyClient: "optional" } }],
      resolver: {
        resolve(key) {
          asked.push(key);
          return { name: "dyn", targets: [`127.0.0.1:${echo.port}`] };
        },
      },
      resolverCacheTtl: 60_000,
      ssrf: { disabled: true },
    });
    const a = ca.issue({ commonName: "a", client: true, altNames: ["URI:spiffe://td/a"] });
    const b = ca.issue({ commonName: "b", client: true, altNames: ["URI:spiffe://td/b", "DNS:b.test"] });
    for (const cert of [a, a, b, b]) expect(await roundTrip(started.port(), cert)).to.equal("ping");
    expect(asked.map((k) => [k.clientSubject, k.clientSan])).to.deep.equal([
      ["CN=a", "spiffe://td/a"],
      ["CN=b", "spiffe://td/b\nb.test"],
    ]);
  });

  it("matches clientSan against each SAN of the key", () => {
    const kinds = new Map<string, MatchKeyKind>(new Proxy({ listeners: [], logger: silentLogger }).matchKeys.map(([k, v]) => [k, v]));
    expect(kinds.get("clientSubject")).to.equal("glob");
    expect(kinds.get("clientSan")).to.equal("glob-any");
    const key = (san: string): RouteKey => ({ listener: "t", protocol: "tcp", clientIp: "1.2.3.4", clientSubject: "CN=a", clientSan: san });
    const proxy = new Proxy({ listeners: [], logger: silentLogger, routes: [{ name: "b", match: { clientSan: "spiffe://td/b*" }, targets: ["127.0.0.1:1"] }] });
    expect(proxy.routes.match(key("DNS-less\nspiffe://td/b/x"))?.route.name).to.equal("b");
    expect(proxy.routes.match(key("spiffe://td/a"))).to.equal(undefined);
  });
});
