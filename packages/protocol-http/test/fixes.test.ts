import { expect } from "chai";
import { sleep } from "@switchyard/test-utils";
import { getHeader, isHttpRequest, isHttpResponse, Stage, type ProxyPlugin } from "./hook-helpers.js";
import { raw, rawSocket, request, startBackend, startHttpProxy, statusOf, type Backend, type Env } from "./helpers.js";

function plugin(name: string, apply: ProxyPlugin["apply"]): ProxyPlugin {
  return { name, apply };
}

describe("route upstreamHeadersTimeout", () => {
  let backend: Backend | undefined;
  let env: Env | undefined;

  it("applies the ROUTE's value to body-less requests: first request, keep-alive request, and after a retry", async () => {
    backend = await startBackend((req, res) => {
      if (req.url === "/ok") res.end("ok");
    });
    let attempts = 0;
    env = await startHttpProxy([{ name: "slow", targets: [`127.0.0.1:${backend.port}`], options: { upstreamHeadersTimeout: 150, bodyTimeout: 100 } }], {
      defaults: { upstreamHeadersTimeout: 30_000 },
      plugins: [
        plugin("retry-once", (proxy) =>
          proxy.hooks.onUpstreamResponse.tap("retry-once", (res) => {
            if (isHttpResponse(res) && res.error !== undefined && res.attempt === 1 && res.retryable) {
              attempts++;
              // a backoff longer than the route's bodyTimeout: no stale deadline may fire meanwhile
              res.retry = { delayMs: 200, reason: "test" };
            }
            return res;
          }),
        ),
      ],
    });
    const s = await rawSocket(env.port);
    s.socket.write("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    await s.waitFor("\r\n\r\nok");
    const t0 = Date.now();
    s.socket.write("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await s.waitFor(/HTTP\/1\.1 504/, 3000);
    const took = Date.now() - t0;
    expect(out).to.match(/HTTP\/1\.1 504/);
    expect(attempts).to.equal(1);
    expect(took).to.be.greaterThanOrEqual(450); // 150 + 200 + 150
    expect(took).to.be.lessThan(1500);
    s.socket.destroy();
    const t1 = Date.now();
    expect((await request(env.port, { path: "/hang2" })).status).to.equal(504);
    expect(Date.now() - t1).to.be.lessThan(1500);
  });

  it("does not let the previous attempt's body deadline fire during a retry backoff", async () => {
    let n = 0;
    backend = await startBackend((_req, res) => {
      if (n++ === 0) res.writeHead(503, { "Content-Length": "4" }).end("busy");
      else res.end("ok");
    });
    env = await startHttpProxy([{ name: "r", targets: [`127.0.0.1:${backend.port}`], options: { bodyTimeout: 100 } }], {
      plugins: [
        plugin("retry-503", (proxy) =>
          proxy.hooks.onUpstreamResponse.tap("retry-503", (res) => {
            if (isHttpResponse(res) && res.status === 503 && res.retryable) res.retry = { delayMs: 300, reason: "test" };
            return res;
          }),
        ),
      ],
    });
    const r = await request(env.port);
    expect(r.status).to.equal(200);
    expect(r.body).to.equal("ok");
  });
});

describe("attempt facts for taps", () => {
  let a: Backend | undefined;
  let b: Backend | undefined;
  let env: Env | undefined;

  it("reports reusedSocket: false on a fresh upstream connection, true on a reused pooled one", async () => {
    a = await startBackend((_req, res) => res.end("ok"));
    const seen: boolean[] = [];
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [
        plugin("observe", (proxy) =>
          proxy.hooks.onUpstreamResponse.tap("observe", (res) => {
            seen.push((res as { reusedSocket?: boolean }).reusedSocket === true);
            return res;
          }),
        ),
      ],
    });
    expect((await request(env.port)).body).to.equal("ok");
    expect((await request(env.port)).body).to.equal("ok");
    expect(seen).to.deep.equal([false, true]);
    expect(a.connections).to.equal(1);
  });

  it("gives onRequest taps the picked target and honours a tap that changes it", async () => {
    a = await startBackend((_req, res) => res.end("a"));
    b = await startBackend((_req, res) => res.end("b"));
    const seen: number[] = [];
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] }], {
      plugins: [
        plugin("pin", (proxy) =>
          proxy.hooks.onRequest.tap("pin", (req) => {
            if (!isHttpRequest(req)) return req;
            seen.push(req.target!.port);
            if (req.url === "/to-b") req.target = { host: "127.0.0.1", port: b!.port };
            return req;
          }),
        ),
      ],
    });
    for (let i = 0; i < 4; i++) expect((await request(env.port, { path: "/to-b" })).body).to.equal("b");
    expect(seen).to.have.length(4);
    expect(new Set(seen)).to.deep.equal(new Set([a.port, b.port])); // round robin picked both before the tap
    expect(a.requests).to.have.length(0);
  });
});

describe("dot segments", () => {
  let pub: Backend;
  let admin: Backend;
  let env: Env;
  before(async () => {
    pub = await startBackend((req, res) => res.end(`public ${req.url}`));
    admin = await startBackend((req, res) => res.end(`admin ${req.url}`));
    env = await startHttpProxy([
      { name: "admin", match: { path: "/admin" }, targets: [`127.0.0.1:${admin.port}`] },
      { name: "public", match: { path: "/public" }, targets: [`127.0.0.1:${pub.port}`] },
      { name: "strip", match: { path: "/s" }, targets: [`127.0.0.1:${pub.port}`], options: { stripPrefix: true } },
    ], { listener: { normalizePath: false } }); // forwarding the target as sent (path-normalisation.test.ts has the default)
  });
  after(async () => {
    await env.close();
    await pub.close();
    await admin.close();
  });

  it("routes on the normalised path and forwards the original request-target", async () => {
    const out = await raw(env.port, "GET /public/../admin/x?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(statusOf(out)).to.equal(200);
    expect(out).to.match(/admin \/public\/\.\.\/admin\/x\?q=1$/);
  });

  it("treats %2e like a dot and ./ as nothing", async () => {
    const a = await raw(env.port, "GET /public/%2E%2e/admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(a).to.match(/admin \/public\/%2E%2e\/admin$/);
    const b = await raw(env.port, "GET /./public/./p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(b).to.match(/public \/\.\/public\/\.\/p$/);
  });

  it("answers 400 to a path that climbs above the root", async () => {
    for (const p of ["/..", "/../admin", "/public/../../admin", "/%2e%2e/x", "/a/.%2E/../b"]) {
      expect(statusOf(await raw(env.port, `GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`)), p).to.equal(400);
    }
  });

  it("a rewrite starts from the normalised path", async () => {
    const out = await raw(env.port, "GET /s/a/../b?x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(out).to.match(/public \/b\?x$/);
  });
});

describe("errors answered before a request reaches an exchange", () => {
  it("sends a HEAD's 400 without a body once its request line was read; other methods get the text body", async () => {
    const backend = await startBackend((_req, res) => res.end("never"));
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const head = await raw(env.port, "HEAD / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    expect(statusOf(head)).to.equal(400);
    expect(head).to.match(/\r\nContent-Length: \d+\r\n/);
    expect(head.endsWith("\r\n\r\n")).to.equal(true);
    const get = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    expect(get).to.match(/^HTTP\/1\.1 400 [^]*\r\n\r\n400 Bad Request[^]*request id: \S+\n$/);
    // a GET on a connection whose previous request was a HEAD is not taken for one
    const after = await raw(env.port, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    expect(after).to.match(/request id: \S+\n$/);
    expect(backend.requests.map((r) => r.method)).to.deep.equal(["HEAD"]);
  });
});
