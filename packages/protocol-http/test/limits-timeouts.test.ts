import { expect } from "chai";
import http from "node:http";
import { closedPort, sleep, type Blackhole } from "@switchyard/test-utils";
import { raw, rawSocket, request, startBackend, startHttpProxy, statusOf, blackhole, type Backend, type Env } from "./helpers.js";

describe("limits", () => {
  let backend: Backend;
  let env: Env;
  before(async () => {
    backend = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => res.end("ok"));
    });
    env = await startHttpProxy(
      [
        { name: "small", listener: "web", match: { path: "/small" }, targets: [`127.0.0.1:${backend.port}`], options: { maxBodySize: 10 } },
        { name: "all", listener: "web", targets: [`127.0.0.1:${backend.port}`] },
      ],
      { listener: { maxHeaderSize: 1024, maxHeaderCount: 20, maxUrlLength: 200 } },
    );
  });
  after(async () => {
    await env.close();
    await backend.close();
  });

  it("answers 431 when the head is too large", async () => {
    const out = await raw(env.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"x".repeat(2000)}\r\n\r\n`);
    expect(statusOf(out)).to.equal(431);
  });

  it("answers 431 when a partial header line exceeds the limit", async () => {
    const out = await raw(env.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"x".repeat(2000)}`);
    expect(statusOf(out)).to.equal(431);
  });

  it("answers 431 for too many header lines", async () => {
    let h = "";
    for (let i = 0; i < 25; i++) h += `X-${i}: v\r\n`;
    expect(statusOf(await raw(env.port, `GET / HTTP/1.1\r\nHost: a\r\n${h}\r\n`))).to.equal(431);
  });

  it("answers 414 for a long request-target", async () => {
    expect(statusOf(await raw(env.port, `GET /${"a".repeat(300)} HTTP/1.1\r\nHost: a\r\n\r\n`))).to.equal(414);
  });

  it("answers 413 when Content-Length is over the route's maxBodySize, without reading the body", async () => {
    const before = backend.requests.length;
    const out = await raw(env.port, "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
    expect(statusOf(out)).to.equal(413);
    expect(out).to.match(/Connection: close/);
    expect(backend.requests.length).to.equal(before);
  });

  it("answers 413 when a chunked body grows over maxBodySize", async () => {
    const out = await raw(env.port, "POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n8\r\n12345678\r\n0\r\n\r\n");
    expect(statusOf(out)).to.equal(413);
  });

  it("lets bodies under the limit through", async () => {
    const r = await request(env.port, { method: "POST", path: "/small", body: "1234567890" });
    expect(r.body).to.equal("ok");
  });
});

describe("timeouts", () => {
  let backend: Backend | undefined;
  let env: Env | undefined;
  let hole: Blackhole | undefined;

  it("answers 408 to a client that sends its head too slowly (slowloris)", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { headersTimeout: 150 } });
    const s = await rawSocket(env.port);
    s.socket.write("GET / HTTP/1.1\r\nHost: a\r\n");
    const t0 = Date.now();
    const out = await s.waitFor(/408/);
    expect(Date.now() - t0).to.be.lessThan(1500);
    expect(statusOf(out)).to.equal(408);
    s.socket.destroy();
  });

  it("closes an idle keep-alive connection quietly after keepAliveTimeout", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { keepAliveTimeout: 100 } });
    const s = await rawSocket(env.port);
    s.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await s.waitFor("\r\n\r\nx");
    await s.closed;
    expect(s.received().match(/HTTP\/1\.1/g)!.length).to.equal(1);
  });

  it("answers 504 when the upstream does not send its head in time", async () => {
    backend = await startBackend(() => {});
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { upstreamHeadersTimeout: 150 } }]);
    const r = await request(env.port);
    expect(r.status).to.equal(504);
  });

  it("answers 504 when the connect times out and 502 when it is refused", async () => {
    hole = await blackhole();
    const refused = await closedPort();
    env = await startHttpProxy([
      { name: "hole", match: { path: "/hole" }, targets: [`127.0.0.1:${hole.port}`], options: { connectTimeout: 150 } },
      { name: "refused", targets: [`127.0.0.1:${refused}`] },
    ]);
    expect((await request(env.port, { path: "/hole" })).status).to.equal(504);
    expect((await request(env.port, { path: "/refused" })).status).to.equal(502);
  });

  it("answers 408 when the request body stalls", async () => {
    backend = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => res.end("x"));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { bodyTimeout: 150 } }]);
    const out = await raw(env.port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12");
    expect(statusOf(out)).to.equal(408);
  });

  it("aborts the client when the response body stalls mid-way", async () => {
    backend = await startBackend((_req, res) => {
      res.writeHead(200, { "Content-Length": "10" });
      res.write("12");
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { bodyTimeout: 150 } }]);
    const outcome = await new Promise<string>((resolve) => {
      http.get({ host: "127.0.0.1", port: env!.port, agent: false }, (res) => {
        res.resume();
        res.on("aborted", () => resolve("aborted"));
        res.on("error", () => resolve("aborted"));
        res.on("end", () => resolve("end"));
      });
    });
    expect(outcome).to.equal("aborted");
  });

  it("enforces a total request deadline", async () => {
    backend = await startBackend((_req, res) => setTimeout(() => res.end("late"), 600));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { requestTimeout: 150 } }]);
    const t0 = Date.now();
    expect((await request(env.port)).status).to.equal(504);
    expect(Date.now() - t0).to.be.lessThan(550);
    await sleep(500);
  });
});
