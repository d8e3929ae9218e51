import { once } from "node:events";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { Proxy, silentLogger } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import RequestIdPlugin from "proxy-plugin-request-id";

function get(port: number, headers: Record<string, string> = {}): Promise<{ headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/", headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("RequestIdPlugin through a real proxy", () => {
  let backend: Server;
  let proxy: Proxy;

  beforeEach(async () => {
    backend = createServer((req, res) => res.end(String(req.headers["x-request-id"] ?? "")));
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
    proxy = new Proxy({
      logger: silentLogger,
      listeners: [{ name: "web", protocol: "http", host: "127.0.0.1", port: 0 }],
      routes: [{ listener: "web", targets: [`127.0.0.1:${(backend.address() as AddressInfo).port}`] }],
      plugins: [new HttpProtocol(), new RequestIdPlugin()],
    });
    await proxy.listen();
  });

  afterEach(async () => {
    await proxy.close({ timeout: 100 });
    expect(proxy.stats().active).to.equal(0);
    backend.closeAllConnections();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  it("sends the same new id to the backend and back to the client", async () => {
    const res = await get(proxy.address("web").port);
    expect(res.body).to.match(/^[0-9a-f-]{36}$/);
    expect(res.headers["x-request-id"]).to.equal(res.body);
  });

  it("propagates the client's id", async () => {
    const res = await get(proxy.address("web").port, { "X-Request-Id": "from-client-42" });
    expect(res.body).to.equal("from-client-42");
    expect(res.headers["x-request-id"]).to.equal("from-client-42");
  });
});
