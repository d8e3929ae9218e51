/**
 * Audit of PROTOCOL-NOTES "Lifecycle bug classes" for the HTTP protocol: a client that leaves
 * at every stage (before sending, during routing, during connect, mid-upload, mid-download)
 * leaves no connection, pool slot or upstream socket behind; proxy chains do not pile up
 * connections; limits hold after TLS termination; byte counters count once; tunnels half-close.
 */
import { expect } from "chai";
import { once } from "node:events";
import http from "node:http";
import type { Socket } from "node:net";
import tls from "node:tls";
import { connectTo, createTestCa, readAll, sleep, waitFor, type TestServer } from "@switchyard/test-utils";
import { blackhole, rawSocket, request, startBackend, startHttpProxy, statusOf, tcpServer, type Backend, type Env } from "./helpers.js";

const active = (env: Env) => env.proxy.proxy.stats().active;
const poolOpen = (env: Env) => env.protocol.poolStats(env.proxy.proxy).reduce((n, p) => n + p.open, 0);

describe("audit: client leaves at every stage", () => {
  let backend: Backend | undefined;
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("before sending anything", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const s = await connectTo(env.port);
    await waitFor(() => active(env!) === 1);
    s.destroy();
    await waitFor(() => active(env!) === 0, 1000);
    expect(backend.connections).to.equal(0);
  });

  it("during routing (a slow resolver): nothing goes upstream", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let resolving = false;
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], {
      plugins: [
        {
          name: "SlowResolve",
          apply(proxy) {
            proxy.hooks.onResolve.tapPromise({ name: "SlowResolve", stage: -500 }, async () => {
              resolving = true;
              await gate;
              return undefined;
            });
          },
        },
      ],
    });
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => resolving);
    c.socket.destroy();
    await waitFor(() => active(env!) === 0, 1000);
    release();
    await sleep(50);
    expect(backend.connections).to.equal(0);
    expect(poolOpen(env)).to.equal(0);
  });

  it("during the upstream connect: the connection goes at once, the dial's slot when it times out", async () => {
    const hole = await blackhole();
    env = await startHttpProxy([{ targets: [`127.0.0.1:${hole.port}`], options: { connectTimeout: 300 } }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => poolOpen(env!) === 1);
    const t0 = Date.now();
    c.socket.destroy();
    await waitFor(() => active(env!) === 0, 1000);
    expect(Date.now() - t0).to.be.lessThan(250);
    await waitFor(() => poolOpen(env!) === 0, 2000, "pool slot freed");
  });

  it("mid-upload: the upstream request is cut and its socket closed, not pooled", async () => {
    let upstreamClosed = false;
    backend = await startBackend((req) => {
      req.resume();
      req.socket.once("close", () => (upstreamClosed = true));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + "b".repeat(1000));
    await waitFor(() => backend!.requests.length === 1);
    c.socket.destroy();
    await waitFor(() => upstreamClosed, 2000, "upstream socket closed");
    await waitFor(() => active(env!) === 0 && poolOpen(env!) === 0);
  });

  it("mid-upload with a FIN (end, not a reset): an abort, the upstream request is cut and nothing is left", async () => {
    let upstreamClosed = false;
    backend = await startBackend((req) => {
      req.resume();
      req.socket.once("close", () => (upstreamClosed = true));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + "b".repeat(1000));
    await waitFor(() => backend!.requests.length === 1);
    c.socket.end();
    await waitFor(() => upstreamClosed, 2000, "upstream socket closed");
    await c.closed;
    expect(c.received()).to.equal("");
    expect(backend.requests[0]!.complete).to.equal(false);
    await waitFor(() => active(env!) === 0 && poolOpen(env!) === 0);
  });

  it("mid-download: the upstream socket is closed, not pooled, and its writer sees the close", async () => {
    let upstreamClosed = false;
    backend = await startBackend((req, res) => {
      req.socket.once("close", () => (upstreamClosed = true));
      res.writeHead(200, { "Content-Length": String(10_000_000) });
      res.write(Buffer.alloc(64 * 1024, 97));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor("aaaa");
    c.socket.destroy();
    await waitFor(() => upstreamClosed, 2000, "upstream socket closed");
    await waitFor(() => active(env!) === 0 && poolOpen(env!) === 0);
  });

  it("after a half-read pipelined second request: both go, nothing is left", async () => {
    tcp = await tcpServer((s) => s.on("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo");
    await c.waitFor("ok");
    c.socket.destroy();
    await waitFor(() => active(env!) === 0);
  });
});

describe("audit: proxy chains", () => {
  let backend: Backend | undefined;
  let front: Env | undefined;
  let back: Env | undefined;

  it("proxy → proxy → backend that closes every connection: no connection piles up anywhere", async () => {
    backend = await startBackend((_req, res) => {
      res.setHeader("Connection", "close");
      res.end("ok");
    });
    let backendOpen = 0;
    backend.server.on("connection", (s: Socket) => {
      backendOpen++;
      s.on("close", () => backendOpen--);
    });
    back = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    front = await startHttpProxy([{ targets: [`127.0.0.1:${back.port}`] }]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    for (let round = 0; round < 5; round++) {
      const rs = await Promise.all([1, 2, 3, 4].map(() => request(front!.port, { agent })));
      expect(rs.map((r) => r.body)).to.deep.equal(["ok", "ok", "ok", "ok"]);
    }
    agent.destroy();
    expect(backend.connections).to.equal(20);
    await waitFor(() => backendOpen === 0 && poolOpen(back!) === 0, 2000, "backend sockets closed");
    // the front keeps at most its 4 keep-alive sockets to the back proxy, and the back serves only those
    expect(poolOpen(front)).to.be.at.most(4);
    await waitFor(() => active(front!) === 0);
    expect(active(back)).to.equal(poolOpen(front));
  });
});

describe("audit: limits after TLS termination", () => {
  let backend: Backend | undefined;
  let env: Env | undefined;

  async function tlsRequest(port: number, ca: string, data: string): Promise<string> {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca });
    s.on("error", () => {});
    await once(s, "secureConnect");
    const all = readAll(s as unknown as Socket);
    s.write(data);
    return (await all).toString("latin1");
  }

  it("applies header-count, URL, smuggling and slow-head rules on a TLS listener exactly as on plain TCP", async () => {
    backend = await startBackend((_req, res) => res.end("reached"));
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "localhost", altNames: ["localhost"] });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], {
      listener: { maxHeaderCount: 5, maxUrlLength: 50, headersTimeout: 200 },
      tls: { cert: leaf.cert, key: leaf.key },
    });
    const ok = await tlsRequest(env.port, ca.cert, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    expect(ok).to.match(/^HTTP\/1\.1 200 [^]*reached$/);
    const many = Array.from({ length: 6 }, (_, i) => `X-${i}: v\r\n`).join("");
    expect(statusOf(await tlsRequest(env.port, ca.cert, `GET / HTTP/1.1\r\nHost: localhost\r\n${many}\r\n`))).to.equal(431);
    expect(statusOf(await tlsRequest(env.port, ca.cert, `GET /${"u".repeat(60)} HTTP/1.1\r\nHost: localhost\r\n\r\n`))).to.equal(414);
    expect(statusOf(await tlsRequest(env.port, ca.cert, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))).to.equal(400);
    expect(statusOf(await tlsRequest(env.port, ca.cert, "GET / HTTP/1.1\r\nHost: localhost\r\n"))).to.equal(408);
    expect(backend.requests.length).to.equal(1);
  });
});

describe("audit: counters", () => {
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("counts each client byte once in and once out", async () => {
    tcp = await tcpServer((s) => s.on("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const sent = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    const c = await rawSocket(env.port);
    c.socket.write(sent);
    await c.closed;
    await waitFor(() => active(env!) === 0);
    const st = env.proxy.proxy.stats();
    expect(st.bytesIn).to.equal(Buffer.byteLength(sent));
    expect(st.bytesOut).to.equal(Buffer.byteLength(c.received(), "latin1"));
    expect(st.total).to.equal(1);
  });
});

const SWITCHED = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n";

/**
 * An upstream that answers the first request head with `answer` and then passes what the tunnel
 * carried so far (everything after the head) to `onData` with each chunk and to `onEnd` at the
 * client's FIN.
 */
function upgradeUpstream(
  answer: (s: Socket) => void,
  on: { onData?: (s: Socket, tunnel: string) => void; onEnd?: (s: Socket, tunnel: string) => void },
  opts: { allowHalfOpen?: boolean } = {},
): Promise<TestServer> {
  return tcpServer((s) => {
    let buf = "";
    let upgraded = false;
    s.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        upgraded = true;
        buf = buf.slice(end + 4);
        answer(s);
      }
      on.onData?.(s, buf);
    });
    if (on.onEnd) s.on("end", () => on.onEnd!(s, buf));
  }, opts);
}

describe("audit: tunnels", () => {
  let tcp: TestServer | undefined;
  let env: Env | undefined;
  const UPGRADE = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n";

  it("the upstream half-closes first: the client still gets its bytes through and the answer back", async () => {
    const received: string[] = [];
    // what arrived after our own FIN, recorded when the client's FIN comes through
    tcp = await upgradeUpstream((s) => s.end(SWITCHED + "server done"), { onEnd: (_s, tunnel) => received.push(tunnel) }, { allowHalfOpen: true });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await connectTo(env.port, "127.0.0.1", { allowHalfOpen: true });
    const all = readAll(c);
    c.write(UPGRADE);
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString("latin1")));
    await waitFor(() => got.includes("server done"));
    c.end("late client bytes");
    await all;
    await waitFor(() => received.length === 1, 2000, "upstream saw the client's FIN");
    expect(received[0]).to.equal("late client bytes");
  });

  it("the client half-closes first: the upstream's later answer still reaches the client", async () => {
    tcp = await upgradeUpstream(
      (s) => s.write(SWITCHED),
      { onEnd: (s, tunnel) => setTimeout(() => s.end(`after your FIN: ${tunnel}`), 50) },
      { allowHalfOpen: true },
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await connectTo(env.port, "127.0.0.1", { allowHalfOpen: true });
    const all = readAll(c);
    c.write(UPGRADE);
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString("latin1")));
    await waitFor(() => got.includes("101"));
    c.end("last words");
    const out = (await all).toString("latin1");
    expect(out).to.match(/after your FIN: last words$/);
  });
  it("carries bytes the client sent right behind the upgrade request (before the 101) into the tunnel", async () => {
    tcp = await upgradeUpstream((s) => s.write(SWITCHED), {
      onData: (s, tunnel) => {
        if (tunnel.includes("!")) s.end(`echo:${tunnel}`);
      },
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await connectTo(env.port);
    const all = readAll(c);
    c.write(UPGRADE + "early bytes!");
    const out = (await all).toString("latin1");
    expect(out).to.match(/^HTTP\/1\.1 101 [^]*\r\n\r\necho:early bytes!$/);
  });
});

