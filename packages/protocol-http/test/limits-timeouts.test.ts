import { expect } from "chai";
import http from "node:http";
import { closedPort, rawRequest, sleep, waitFor, type Blackhole, type TestServer } from "@switchyard/test-utils";
import { raw, rawSocket, request, startBackend, startHttpProxy, statusOf, blackhole, tcpServer, type Backend, type Env } from "./helpers.js";

/** Every status line in a raw response stream, in order (1xx included). */
const statuses = (out: string) => [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

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

  it("answers 414 when the request line alone passes maxHeaderSize, complete or still arriving", async () => {
    // maxUrlLength: 0 leaves maxHeaderSize as the only bound on the request line
    const own = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { maxHeaderSize: 1024, maxUrlLength: 0 } });
    const before = backend.requests.length;
    const target = `/${"a".repeat(2000)}`;
    expect(statusOf(await raw(own.port, `GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`))).to.equal(414);
    expect(statusOf(await raw(own.port, `GET ${target}`))).to.equal(414);
    // the same size in a header line is 431
    expect(statusOf(await raw(own.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`))).to.equal(431);
    expect(backend.requests.length).to.equal(before);
  });

  it("answers 413 with Connection: close when a chunked body passes maxBodySize mid-stream, cutting the upstream request; other routes are not limited", async () => {
    const seen: string[] = [];
    const closed: number[] = [];
    const tcp: TestServer = await tcpServer((s) => {
      const i = seen.push("") - 1;
      s.on("close", () => closed.push(i));
      s.on("data", (d: Buffer) => {
        seen[i] += d.toString("latin1");
        if (seen[i]!.endsWith("0\r\n\r\n")) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      });
    });
    const own = await startHttpProxy([
      { name: "small", match: { path: "/small" }, targets: [`127.0.0.1:${tcp.port}`], options: { maxBodySize: 10 } },
      { name: "all", targets: [`127.0.0.1:${tcp.port}`] },
    ]);
    const c = await rawSocket(own.port);
    c.socket.write("POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n");
    await waitFor(() => seen[0]?.includes("12345"), 2000, "the first chunk upstream");
    c.socket.write("8\r\n12345678\r\n0\r\n\r\n");
    const out = await c.waitFor(/request id: \S+\n/);
    expect(statusOf(out)).to.equal(413);
    expect(out).to.match(/\r\nConnection: close\r\n/);
    await c.closed;
    await waitFor(() => closed.includes(0), 2000, "the upstream socket closed");
    expect(seen[0]).to.not.include("12345678");
    expect(seen[0]).to.not.include("0\r\n\r\n");
    const body = "5\r\n12345\r\n8\r\n12345678\r\n0\r\n\r\n";
    const ok = await rawRequest(own.port, `POST /other HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
    expect(ok.status).to.equal(200);
    expect(seen.length).to.equal(2);
    expect(seen[1]).to.match(/^POST \/other HTTP\/1\.1\r\n[^]*\r\n\r\n5\r\n12345\r\n8\r\n12345678\r\n0\r\n\r\n$/);
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

  it("answers 408 at headersTimeout to a head that trickles in a line at a time: each line does not reset it", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { headersTimeout: 300 } });
    const s = await rawSocket(env.port);
    const t0 = Date.now();
    s.socket.write("GET / HTTP/1.1\r\nHost: a\r\n");
    let lines = 0;
    const trickle = setInterval(() => s.socket.write(`X-Line-${lines++}: v\r\n`), 80);
    try {
      const out = await s.waitFor(/408/, 3000);
      expect(Date.now() - t0).to.be.within(200, 1500);
      expect(statusOf(out)).to.equal(408);
      expect(lines).to.be.at.least(2);
    } finally {
      clearInterval(trickle);
      s.socket.destroy();
    }
    expect(backend.requests.length).to.equal(0);
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

  /** An upstream that answers a request with `first`, then writes `next(i)` every 80 ms and never finishes its head. */
  async function tricklingUpstream(first: string, next: (i: number) => string): Promise<TestServer> {
    return tcpServer((s) =>
      s.once("data", () => {
        s.write(first);
        let i = 0;
        const t = setInterval(() => s.write(next(i++)), 80);
        s.on("close", () => clearInterval(t));
      }),
    );
  }

  async function untilHeadTimeout(upstream: TestServer): Promise<{ out: string; ms: number }> {
    env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`], options: { upstreamHeadersTimeout: 300 } }]);
    const c = await rawSocket(env.port);
    const t0 = Date.now();
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await c.waitFor(/ 504 [^]*request id: \S+\n/, 3000);
    const ms = Date.now() - t0;
    c.socket.destroy();
    await waitFor(() => upstream.sockets[0]!.destroyed, 2000, "the upstream socket closed");
    return { out, ms };
  }

  it("answers 504 at upstreamHeadersTimeout to an upstream that trickles its head a line at a time", async () => {
    const upstream = await tricklingUpstream("HTTP/1.1 200 OK\r\n", (i) => `X-Slow-${i}: v\r\n`);
    const { out, ms } = await untilHeadTimeout(upstream);
    expect(statuses(out)).to.deep.equal([504]);
    expect(out).to.not.include("X-Slow");
    expect(ms).to.be.within(250, 1500);
  });

  it("answers 504 at upstreamHeadersTimeout to an upstream that keeps sending 102 Processing", async () => {
    const upstream = await tricklingUpstream("HTTP/1.1 102 Processing\r\n\r\n", () => "HTTP/1.1 102 Processing\r\n\r\n");
    const { out, ms } = await untilHeadTimeout(upstream);
    const seen = statuses(out);
    // the interim responses were relayed as they came, and did not hold the deadline off
    expect(seen.length).to.be.at.least(3);
    expect(seen.slice(0, -1).every((s) => s === 102)).to.equal(true);
    expect(seen.at(-1)).to.equal(504);
    expect(ms).to.be.within(250, 1500);
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
