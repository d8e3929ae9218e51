import { X509Certificate } from "node:crypto";
import { expect } from "chai";
import type { ListenerTls, RouteConfig } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { MtlsPlugin, type MtlsOptions } from "@switchyard/plugin-mtls";
import { expectNoActiveConnections, header, reply, startProxy, startRawBackend, type RawBackend, type StartedProxy } from "@switchyard/test-utils";
import { buildPki, httpsGet, type Pki } from "./fixtures.js";

describe("MtlsPlugin on HTTP", () => {
  let p: Pki;
  let backend: RawBackend;
  let started: StartedProxy | undefined;
  before(function () {
    this.timeout(60_000);
    p = buildPki();
  });
  beforeEach(async () => {
    backend = await startRawBackend((_req, socket) => reply(socket, 200, [], "ok"));
  });
  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    started = undefined;
    await backend.close();
  });

  async function proxy(tls: Partial<ListenerTls>, options: MtlsOptions, routes?: RouteConfig[]): Promise<number> {
    started = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0, tls: { cert: p.server.cert, key: p.server.key, ca: p.ca.cert, ...tls } }],
      routes: routes ?? [{ name: "r", targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [new HttpProtocol(), new MtlsPlugin(options)],
    });
    return started.port();
  }
  const last = () => backend.requests[backend.requests.length - 1]!;
  const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, "").toLowerCase();

  describe("forwardClientCert", () => {
    it("xfcc: sends the verified identity as Hash;Subject;URI;DNS and drops the client's own header", async () => {
      const port = await proxy({ verifyClient: "required" }, { forwardClientCert: { format: "xfcc" } });
      const res = await httpsGet(port, p, p.alice, { "X-Forwarded-Client-Cert": 'Hash=00;Subject="CN=admin"' });
      expect(res.status).to.equal(200);
      const xfcc = backend.requests[0]!.headers.filter(([n]) => n.toLowerCase() === "x-forwarded-client-cert");
      expect(xfcc).to.have.length(1);
      expect(xfcc[0]![1]).to.equal(`Hash=${fingerprint(p.alice.cert)};Subject="O=Tenant A,CN=alice";URI=spiffe://prod.test/tenant-a/web;DNS=alice.tenant-a.test`);
    });

    it("rfc9440: sends Client-Cert as a :base64: byte sequence of the DER certificate, spoofed copies removed", async () => {
      const port = await proxy({ verifyClient: "optional" }, { forwardClientCert: { format: "rfc9440" } });
      await httpsGet(port, p, p.alice, { "Client-Cert": ":AAAA:", "Client-Cert-Chain": ":AAAA:" });
      const der = new X509Certificate(p.alice.cert).raw.toString("base64");
      expect(header(last().headers, "client-cert")).to.equal(`:${der}:`);
      // the chain sent is the leaf alone (the trust anchor is not repeated)
      expect(header(last().headers, "client-cert-chain")).to.equal(undefined);
      // no certificate: nothing forwarded, and what the client sent is gone
      const res = await httpsGet(port, p, undefined, { "Client-Cert": ":AAAA:" });
      expect(res.status).to.equal(200);
      expect(header(last().headers, "client-cert")).to.equal(undefined);
    });

    it("append keeps a trusted proxy's XFCC and adds this hop's element; an untrusted client's is replaced", async () => {
      const sent = 'Hash=aa;Subject="CN=edge"';
      let port = await proxy({ verifyClient: "required" }, { forwardClientCert: { format: "xfcc", mode: "append" }, trustedProxies: ["127.0.0.1"] });
      await httpsGet(port, p, p.bob, { "x-forwarded-client-cert": sent });
      expect(header(last().headers, "x-forwarded-client-cert")).to.equal(`${sent},Hash=${fingerprint(p.bob.cert)};Subject="O=Tenant B,CN=bob";URI=spiffe://prod.test/tenant-b/api`);
      await started!.proxy.close({ timeout: 100 });
      port = await proxy({ verifyClient: "required" }, { forwardClientCert: { format: "xfcc", mode: "append" }, trustedProxies: ["10.0.0.0/8"] });
      await httpsGet(port, p, p.bob, { "x-forwarded-client-cert": sent });
      expect(header(last().headers, "x-forwarded-client-cert")).to.equal(`Hash=${fingerprint(p.bob.cert)};Subject="O=Tenant B,CN=bob";URI=spiffe://prod.test/tenant-b/api`);
    });

    it("forward passes a trusted proxy's XFCC unchanged", async () => {
      const sent = 'Hash=aa;Subject="CN=edge"';
      const port = await proxy({ verifyClient: "required" }, { forwardClientCert: { format: "xfcc", mode: "forward" }, trustedProxies: ["127.0.0.1"] });
      await httpsGet(port, p, p.bob, { "x-forwarded-client-cert": sent });
      expect(header(last().headers, "x-forwarded-client-cert")).to.equal(sent);
    });
  });

  describe("refusals on an optional listener", () => {
    const routes = (): RouteConfig[] => [
      { name: "tenant-a", match: { path: "/a" }, targets: [`127.0.0.1:${backend.port}`], options: { mtls: { allowSans: ["spiffe://prod.test/tenant-a/*"] } } },
      { name: "subjects", match: { path: "/s" }, targets: [`127.0.0.1:${backend.port}`], options: { mtls: { allowSubjects: ["*,CN=bob"] } } },
      { name: "pinned", match: { path: "/f" }, targets: [`127.0.0.1:${backend.port}`], options: { mtls: { allowFingerprints: [new X509Certificate(p.alice.cert).fingerprint256] } } },
      { name: "open", targets: [`127.0.0.1:${backend.port}`] },
    ];

    it("answers 496 without a certificate, 495 for foreign, expired and revoked ones, 403 when not allowed", async () => {
      const port = await proxy({ verifyClient: "optional", crl: p.crl }, {}, routes());
      expect(await httpsGet(port, p, undefined, {}, "/a")).to.include({ status: 496, message: "SSL Certificate Required" });
      expect(await httpsGet(port, p, p.stranger, {}, "/a")).to.include({ status: 495, message: "SSL Certificate Error" });
      expect((await httpsGet(port, p, p.expired, {}, "/a")).status).to.equal(495);
      expect((await httpsGet(port, p, p.revoked, {}, "/a")).status).to.equal(495);
      expect((await httpsGet(port, p, p.bob, {}, "/a")).status).to.equal(403);
      expect((await httpsGet(port, p, p.alice, {}, "/a")).status).to.equal(200);
      expect((await httpsGet(port, p, p.alice, {}, "/s")).status).to.equal(403);
      expect((await httpsGet(port, p, p.bob, {}, "/s")).status).to.equal(200);
      expect((await httpsGet(port, p, p.bob, {}, "/f")).status).to.equal(403);
      expect((await httpsGet(port, p, p.alice, {}, "/f")).status).to.equal(200);
      // a route without lists: open to clients without a certificate, not to a failed one
      expect((await httpsGet(port, p, undefined, {}, "/")).status).to.equal(200);
      expect((await httpsGet(port, p, p.stranger, {}, "/")).status).to.equal(495);
      expect(backend.requests).to.have.length(4);
    });

    it("optional-no-ca forwards a foreign CA's identity marked by the listener, but its allow-lists want a verified one", async () => {
      const port = await proxy({ verifyClient: "optional-no-ca" }, { forwardClientCert: { format: "xfcc" } }, routes());
      expect((await httpsGet(port, p, p.stranger, {}, "/")).status).to.equal(200);
      expect(header(last().headers, "x-forwarded-client-cert")).to.match(/^Hash=[0-9a-f]{64};Subject="O=Tenant A,CN=alice"/);
      expect((await httpsGet(port, p, p.stranger, {}, "/a")).status).to.equal(495);
      // an expired certificate is no issuer question: refused
      expect((await httpsGet(port, p, p.expired, {}, "/")).status).to.equal(495);
    });
  });

  describe("a required listener", () => {
    it("refuses missing, foreign, expired and revoked certificates in TLS, before any request", async () => {
      const port = await proxy({ verifyClient: "required", crl: p.crl }, {});
      for (const client of [undefined, p.stranger, p.expired, p.revoked]) {
        const err = await httpsGet(port, p, client).then(
          (r) => new Error(`answered ${r.status}`),
          (e: Error) => e,
        );
        expect(err.message).to.not.match(/^answered/);
      }
      expect((await httpsGet(port, p, p.alice)).status).to.equal(200);
      expect(backend.requests).to.have.length(1);
    });
  });

  it("routes by clientSan and clientSubject: each tenant's certificate to its own backend", async () => {
    const other = await startRawBackend((_req, socket) => reply(socket, 200, [], "b"));
    try {
      const port = await proxy({ verifyClient: "optional" }, {}, [
        { name: "a", match: { clientSan: "spiffe://prod.test/tenant-a/*" }, targets: [`127.0.0.1:${backend.port}`] },
        { name: "b", match: { clientSubject: "O=Tenant B,*" }, targets: [`127.0.0.1:${other.port}`] },
      ]);
      expect(await httpsGet(port, p, p.alice)).to.include({ status: 200, body: "ok" });
      expect(await httpsGet(port, p, p.bob)).to.include({ status: 200, body: "b" });
      // a foreign CA's certificate claiming tenant A's SAN does not route as tenant A (no route:
      // protocol-http answers 421 on a TLS connection)
      expect((await httpsGet(port, p, p.stranger)).status).to.equal(421);
      expect((await httpsGet(port, p, undefined)).status).to.equal(421);
      expect(backend.requests).to.have.length(1);
      expect(other.requests).to.have.length(1);
    } finally {
      await other.close();
    }
  });

  it("refuses a bad options.mtls when the proxy is built", async () => {
    const bad = (mtls: unknown) => () =>
      new MtlsPlugin().checkRouteOptions({ mtls }, "route r: options");
    expect(bad({ allowSubject: ["x"] })).to.throw(/unknown key "allowSubject"/);
    expect(bad({ allowFingerprints: ["abc"] })).to.throw(/not a SHA-256 fingerprint/);
    expect(bad({ allowSans: "spiffe://x" })).to.throw(/must be a list/);
    expect(() => new MtlsPlugin({ forwardClientCert: { format: "pem" as "xfcc" } })).to.throw(/format must be/);
  });
});
