import { expect } from "chai";
import http from "node:http";
import { request, startBackend, startHttpProxy, raw, statusOf, type Backend, type Env } from "./helpers.js";

describe("HttpProtocol basics", () => {
  let backend: Backend;
  let env: Env | undefined;

  it("forwards a GET and relays the response", async () => {
    backend = await startBackend((req, res) => {
      res.setHeader("X-Path", req.url!);
      res.end("hello world!");
    });
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
    const r = await request(env.port, { path: "/a/b?c=1" });
    expect(r.status).to.equal(200);
    expect(r.body).to.equal("hello world!");
    expect(r.headers["x-path"]).to.equal("/a/b?c=1");
  });

  it("forwards a POST body with Content-Length and chunked", async () => {
    backend = await startBackend((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => res.end(`${req.headers["transfer-encoding"] ?? "len"}:${Buffer.concat(chunks).toString()}`));
    });
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
    const r1 = await request(env.port, { method: "POST", body: "abc" });
    expect(r1.body).to.equal("len:abc");
    const r2 = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: env!.port, method: "POST", agent: false }, (res) => {
        let b = "";
        res.on("data", (c) => (b += c));
        res.on("end", () => resolve(b));
      });
      req.on("error", reject);
      req.write("one,");
      setTimeout(() => req.end("two"), 20);
    });
    expect(r2).to.equal("chunked:one,two");
  });

  it("answers 404 when no route matches", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ listener: "web", match: { path: "/api" }, targets: [`127.0.0.1:${backend.port}`] }]);
    const r = await request(env.port, { path: "/other" });
    expect(r.status).to.equal(404);
    expect(r.body).to.match(/request id: /);
  });

  it("serves keep-alive requests over one upstream connection", async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 10; i++) {
      const r = await request(env.port, { agent });
      expect(r.body).to.equal("ok");
    }
    agent.destroy();
    expect(backend.connections).to.equal(1);
    expect(backend.requests.length).to.equal(10);
  });

  it("rejects a raw smuggling request with 400", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
    const out = await raw(env.port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    expect(statusOf(out)).to.equal(400);
    expect(backend.requests.length).to.equal(0);
  });
});
