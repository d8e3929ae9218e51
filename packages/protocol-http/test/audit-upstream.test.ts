/**
 * Audit of the upstream-facing bullets of PROTOCOL-NOTES: error mapping (DNS, TLS, queue full,
 * shutting down), truncation after the head went down, the total deadline once a response
 * started, and body idle timeouts that count activity in both directions.
 */
import { expect } from "chai";
import http from "node:http";
import type { Socket } from "node:net";
import { sleep, waitFor, type TestServer } from "@switchyard/test-utils";
import { raw, rawSocket, request, startBackend, startHttpProxy, statusOf, tcpServer, type Backend, type Env } from "./helpers.js";

/** GET through Node's client; "end" for a clean response, "aborted" when the connection was cut. */
function outcomeOf(port: number, path = "/"): Promise<{ outcome: "end" | "aborted"; body: string; status: number }> {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let body = "";
        let done = false;
        const finish = (outcome: "end" | "aborted") => {
          if (!done) resolve({ outcome, body, status: res.statusCode! });
          done = true;
        };
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("aborted", () => finish("aborted"));
        res.on("error", () => finish("aborted"));
        res.on("end", () => finish("end"));
      })
      .on("error", () => resolve({ outcome: "aborted", body: "", status: 0 }));
  });
}

describe("audit: upstream error mapping", () => {
  let backend: Backend | undefined;
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("answers 502 (not 504, not a hang) when the target's name does not resolve", async () => {
    env = await startHttpProxy([{ targets: ["no-such-host.invalid:80"], options: { connectTimeout: 5000 } }]);
    const t0 = Date.now();
    const r = await request(env.port);
    expect(r.status).to.equal(502);
    expect(r.headers["x-request-id"]).to.be.a("string");
    expect(Date.now() - t0).to.be.lessThan(4000);
  });

  it("answers 502 when the TLS handshake with an https target fails (the target speaks plain HTTP)", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")));
    env = await startHttpProxy([{ targets: [`https://127.0.0.1:${tcp.port}`], options: { connectTimeout: 3000 } }]);
    const t0 = Date.now();
    expect((await request(env.port)).status).to.equal(502);
    expect(Date.now() - t0).to.be.lessThan(2000);
    expect(env.protocol.poolStats(env.proxy.proxy)[0]!.open).to.equal(0);
  });

  it("answers 504 when an https target accepts TCP but never completes the handshake", async () => {
    tcp = await tcpServer(() => {});
    env = await startHttpProxy([{ targets: [`https://127.0.0.1:${tcp.port}`], options: { connectTimeout: 150 } }]);
    expect((await request(env.port)).status).to.equal(504);
  });

  it("answers 503 with Retry-After and the request id at once when the pool queue is full", async () => {
    const held: http.ServerResponse[] = [];
    backend = await startBackend((_req, res) => held.push(res));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { pool: { maxSockets: 1, queueSize: 1, queueTimeout: 5000 } } }]);
    const first = request(env.port);
    await waitFor(() => held.length === 1);
    const queued = request(env.port, { path: "/queued" });
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.queued === 1);
    const refused = await request(env.port, { path: "/refused" });
    expect(refused.status).to.equal(503);
    expect(refused.headers["retry-after"]).to.equal("1");
    expect(refused.body).to.include(String(refused.headers["x-request-id"]));
    held[0]!.end("one");
    expect((await first).body).to.equal("one");
    await waitFor(() => held.length === 2);
    held[1]!.end("two");
    expect((await queued).body).to.equal("two");
    expect(backend.requests.map((r) => r.url)).to.deep.equal(["/", "/queued"]);
  });

  it("answers 503 with Retry-After to a queued request and to new requests once the pools shut down", async () => {
    const held: http.ServerResponse[] = [];
    backend = await startBackend((_req, res) => held.push(res));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { pool: { maxSockets: 1 } } }]);
    const first = request(env.port);
    await waitFor(() => held.length === 1);
    const queued = request(env.port, { path: "/queued" });
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.queued === 1);
    env.protocol.close();
    const q = await queued;
    expect(q.status).to.equal(503);
    expect(q.headers["retry-after"]).to.equal("1");
    const late = await request(env.port, { path: "/late" });
    expect(late.status).to.equal(503);
    expect(late.headers["retry-after"]).to.equal("1");
    held[0]!.end("in flight");
    expect((await first).body).to.equal("in flight");
    expect(backend.requests.map((r) => r.url)).to.deep.equal(["/"]);
  });

  it("aborts the client (no clean last chunk) when a chunked response is cut by an upstream FIN", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const r = await outcomeOf(env.port);
    expect(r.status).to.equal(200);
    expect(r.outcome).to.equal("aborted");
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(out).to.include("hello");
    expect(out).to.not.match(/\r\n0\r\n\r\n$/);
  });

  it("aborts the client when a chunked response is cut mid-chunk", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhel")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await outcomeOf(env.port)).outcome).to.equal("aborted");
  });

  it("aborts the client and drops the upstream socket on a malformed chunk size after the head", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const r = await outcomeOf(env.port);
    expect(r.outcome).to.equal("aborted");
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.open === 0);
  });
});

describe("audit: deadlines", () => {
  let backend: Backend | undefined;
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("enforces requestTimeout after the response head went down: the client connection is aborted", async () => {
    let upstreamClosed = false;
    backend = await startBackend((req, res) => {
      req.socket.once("close", () => (upstreamClosed = true));
      res.writeHead(200, { "Content-Type": "text/plain" });
      const t = setInterval(() => res.write("tick\n"), 40);
      res.on("close", () => clearInterval(t));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { requestTimeout: 300, bodyTimeout: 10_000 } }]);
    const t0 = Date.now();
    const r = await outcomeOf(env.port);
    expect(r.status).to.equal(200);
    expect(r.body).to.include("tick");
    expect(r.outcome).to.equal("aborted");
    expect(Date.now() - t0).to.be.within(250, 2000);
    await waitFor(() => upstreamClosed, 2000, "upstream socket closed");
  });

  it("never reuses a socket after an upstream headers timeout: the late answer cannot reach the next request", async () => {
    let n = 0;
    tcp = await tcpServer((s) =>
      s.on("data", () => {
        const id = ++n;
        // the first answer comes after the proxy gave up on it
        setTimeout(() => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr${id}`), id === 1 ? 250 : 0);
      }),
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`], options: { upstreamHeadersTimeout: 100 } }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor("504");
    // at once, before the late answer: were the socket back in the pool, /2 would take it (an
    // idle socket that receives data is dropped, so waiting would hide a reuse)
    c.socket.write("GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    await c.closed;
    expect(c.received()).to.match(/\r\n\r\nr2$/);
    expect(c.received()).to.not.include("r1");
    expect(tcp!.accepted).to.equal(2);
  });

  it("never reuses a socket after a response body timeout: the next request gets a new connection and none of the old body", async () => {
    let conns = 0;
    tcp = await tcpServer((s) => {
      const id = ++conns;
      let n = 0;
      s.on("data", () => {
        if (id > 1) return void s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
        // 2 of 10 body bytes, then a stall; a request that reaches this socket again gets the rest first
        if (n++ === 0) s.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12");
        else s.write("34567890HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale");
      });
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`], options: { bodyTimeout: 150 } }]);
    const first = await outcomeOf(env.port);
    expect(first).to.deep.equal({ outcome: "aborted", body: "12", status: 200 });
    const second = await outcomeOf(env.port);
    expect(second).to.deep.equal({ outcome: "end", body: "fresh", status: 200 });
    expect(tcp.accepted).to.equal(2);
  });

  it("never reuses a socket after requestTimeout fired before the response head: the late answer cannot reach the next request", async () => {
    let conns = 0;
    tcp = await tcpServer((s) => {
      const id = ++conns;
      let n = 0;
      s.on("data", () => {
        if (id > 1) return void s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
        // the first connection answers each request 400 ms after it came, in order
        const k = ++n;
        const t = setTimeout(() => s.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlate${k}`), 400);
        s.on("close", () => clearTimeout(t));
      });
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`], options: { requestTimeout: 150 } }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await c.waitFor(/request id: \S+\n/);
    expect(statusOf(out)).to.equal(504);
    // at once, while the first connection still owes its late answer
    c.socket.write("GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    await c.closed;
    expect(c.received()).to.match(/\r\n\r\nfresh$/);
    expect(c.received()).to.not.include("late");
    expect(tcp.accepted).to.equal(2);
  });

  it("treats bodyTimeout as idle time: a request body trickling faster than it is not cut", async () => {
    backend = await startBackend((req, res) => {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => res.end(`got ${n}`));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { bodyTimeout: 200 } }]);
    const c = await rawSocket(env.port);
    c.socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    for (let i = 0; i < 10; i++) {
      await sleep(60); // 600 ms in all, three times the idle timeout
      c.socket.write("x");
    }
    const out = await c.waitFor("got 10");
    expect(statusOf(out)).to.equal(200);
    c.socket.destroy();
  });

  it("treats bodyTimeout as idle time: a response body trickling faster than it is not cut", async () => {
    backend = await startBackend((_req, res) => {
      res.writeHead(200, { "Content-Length": "10" });
      let i = 0;
      const t = setInterval(() => {
        res.write("y");
        if (++i === 10) {
          clearInterval(t);
          res.end();
        }
      }, 60);
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { bodyTimeout: 200 } }]);
    const r = await outcomeOf(env.port);
    expect(r.outcome).to.equal("end");
    expect(r.body).to.equal("yyyyyyyyyy");
  });
});
