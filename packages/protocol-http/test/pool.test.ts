import { expect } from "chai";
import http from "node:http";
import type { Socket } from "node:net";
import { resourceBaseline, expectNoLeakedResources, sleep, waitFor, type TestServer } from "@switchyard/test-utils";
import { rawSocket, request, startBackend, startHttpProxy, statusOf, tcpServer, type Backend, type Env } from "./helpers.js";

/**
 * An upstream whose first connection answers once, then resets on its next request (a stale
 * keep-alive socket); later connections answer every request. Bodies name the connection: c1, c2…
 */
async function staleAfterFirstAnswer(): Promise<{ server: TestServer; connections(): number }> {
  let n = 0;
  const server = await tcpServer((s) => {
    const id = ++n;
    let served = 0;
    s.on("data", () => {
      if (id === 1 && served === 1) return s.destroy();
      served++;
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc${id}`);
    });
  });
  return { server, connections: () => n };
}

describe("upstream pool", () => {
  let backend: Backend | undefined;
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("reuses one upstream connection for sequential requests from several clients", async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    for (let i = 0; i < 5; i++) expect((await request(env.port)).body).to.equal("ok");
    expect(backend.connections).to.equal(1);
    expect(backend.requests.length).to.equal(5);
  });

  it("queues beyond maxSockets and answers 503 with Retry-After when the queue wait times out", async () => {
    const held: http.ServerResponse[] = [];
    backend = await startBackend((_req, res) => held.push(res));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { pool: { maxSockets: 1, queueTimeout: 100 } } }]);
    const first = request(env.port);
    await waitFor(() => held.length === 1);
    const second = await request(env.port);
    expect(second.status).to.equal(503);
    expect(second.headers["retry-after"]).to.equal("1");
    held[0]!.end("done");
    expect((await first).body).to.equal("done");
    expect(backend.connections).to.equal(1);
  });

  it("answers 503 at once when the wait queue is full", async () => {
    const held: http.ServerResponse[] = [];
    backend = await startBackend((_req, res) => held.push(res));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { pool: { maxSockets: 1, queueSize: 0 } } }]);
    const first = request(env.port);
    await waitFor(() => held.length === 1);
    const t0 = Date.now();
    expect((await request(env.port)).status).to.equal(503);
    expect(Date.now() - t0).to.be.lessThan(500);
    held[0]!.end("x");
    await first;
  });

  it("hands a released socket to the next queued request", async () => {
    backend = await startBackend((_req, res) => setTimeout(() => res.end("ok"), 30));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { pool: { maxSockets: 1 } } }]);
    const all = await Promise.all([1, 2, 3, 4].map(() => request(env!.port)));
    expect(all.map((r) => r.body)).to.deep.equal(["ok", "ok", "ok", "ok"]);
    expect(backend.connections).to.equal(1);
  });

  it("resends an idempotent request once on a fresh connection when a pooled socket turns out stale", async () => {
    const stale = await staleAfterFirstAnswer();
    tcp = stale.server;
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await request(env.port)).body).to.equal("c1");
    expect((await request(env.port)).body).to.equal("c2");
    expect(stale.connections()).to.equal(2);
  });

  it("resends after a stale pooled socket only once: when the fresh connection also closes before answering, 502", async () => {
    // requests received per upstream connection
    const received: number[] = [];
    tcp = await tcpServer((s) => {
      const id = received.push(0) - 1;
      s.on("data", () => {
        const n = ++received[id]!;
        // the first connection answers once, then closes on its next request (a stale keep-alive
        // socket); every later connection closes without answering
        if (id === 0 && n === 1) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc1");
        else s.destroy();
      });
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await request(env.port)).body).to.equal("c1");
    const r = await request(env.port);
    expect(r.status).to.equal(502);
    expect(received).to.deep.equal([2, 1]);
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.open === 0);
  });

  it("does not resend a POST with a body after a stale socket: 502", async () => {
    tcp = (await staleAfterFirstAnswer()).server;
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await request(env.port)).body).to.equal("c1");
    expect((await request(env.port, { method: "POST", body: "data" })).status).to.equal(502);
  });

  it("drops idle pooled sockets that the upstream closes, and uses a new one", async () => {
    tcp = await tcpServer((s) => {
      s.once("data", () => {
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        setTimeout(() => s.end(), 20);
      });
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await request(env.port)).body).to.equal("ok");
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.open === 0);
    expect((await request(env.port)).body).to.equal("ok");
    expect(tcp.accepted).to.equal(2);
  });

  it("drops an idle pooled socket that receives unexpected data", async () => {
    tcp = await tcpServer((s) => {
      s.once("data", () => {
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        setTimeout(() => s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbogus"), 20);
      });
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await request(env.port)).body).to.equal("ok");
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.open === 0);
    expect((await request(env.port)).body).to.equal("ok");
  });

  const noReuse: Array<[string, string]> = [
    ["Connection: close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"],
    ["extra bytes after the response", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"],
    ["an HTTP/1.0 response without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
  ];
  for (const [name, answer] of noReuse) {
    it(`does not reuse an upstream socket after ${name}`, async () => {
      const sockets: Socket[] = [];
      tcp = await tcpServer((s) => {
        sockets.push(s);
        s.on("data", () => s.write(answer));
      });
      env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
      expect((await request(env.port)).body).to.equal("ok");
      expect((await request(env.port)).body).to.equal("ok");
      expect(tcp.accepted).to.equal(2);
    });
  }

  it("does not reuse an upstream socket after an early response", async () => {
    tcp = await tcpServer((s) => {
      s.once("data", () => s.write("HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\n\r\nbig"));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nfirst bytes");
    const out = await c.waitFor("big");
    expect(statusOf(out)).to.equal(413);
    expect(out).to.match(/Connection: close/);
    await c.closed;
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.open === 0);
  });

  it("leaves nothing open after proxy.close(), idle pooled sockets included", async () => {
    const baseline = resourceBaseline();
    backend = await startBackend((_req, res) => res.end("ok"));
    const server = backend;
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const agent = new http.Agent({ keepAlive: true });
    await request(env.port, { agent });
    await request(env.port, { agent });
    agent.destroy();
    await env.close();
    env = undefined;
    await server.close();
    backend = undefined;
    await sleep(10);
    await expectNoLeakedResources(baseline);
  });
});
