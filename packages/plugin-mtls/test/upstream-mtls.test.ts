import { once } from "node:events";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { expect } from "chai";
import { HttpProtocol } from "@switchyard/protocol-http";
import { expectNoActiveConnections, rawRequest, startProxy, type StartedProxy } from "@switchyard/test-utils";
import { buildPki, type Pki } from "./fixtures.js";

// Upstream mTLS is core's target TLS (`tls: { ca, cert, key }`): the proxy presents a client
// certificate to a backend that requires one (documented in plugin-mtls's README).
describe("upstream mTLS (target tls cert/key)", () => {
  let p: Pki;
  let backend: Server;
  let started: StartedProxy | undefined;
  const seen: string[] = [];
  before(function () {
    this.timeout(60_000);
    p = buildPki();
  });
  beforeEach(async () => {
    backend = createServer({ cert: p.server.cert, key: p.server.key, ca: p.ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push((req.socket as TLSSocket).getPeerX509Certificate()?.subject ?? "");
      res.end("secret");
    });
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
  });
  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    started = undefined;
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
    seen.length = 0;
  });

  async function proxyTo(tls: Record<string, unknown>): Promise<number> {
    const port = (backend.address() as AddressInfo).port;
    started = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [{ name: "r", targets: [{ host: "127.0.0.1", port, scheme: "https", tls: { ca: p.ca.cert, servername: "proxy.test", ...tls } }] }],
      plugins: [new HttpProtocol()],
    });
    return started.port();
  }

  it("presents the route's client certificate to a backend that requires one", async () => {
    const port = await proxyTo({ cert: p.alice.cert, key: p.alice.key });
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(res.status).to.equal(200);
    expect(res.body).to.equal("secret");
    expect(seen).to.deep.equal(["CN=alice\nO=Tenant A"]);
  });

  it("answers 502 when the route has no client certificate for such a backend", async () => {
    const port = await proxyTo({});
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(res.status).to.equal(502);
    expect(seen).to.deep.equal([]);
  });
});
