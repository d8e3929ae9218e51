import { expect } from "chai";
import http from "node:http";
import { header, parseHead, startRawBackend, waitFor, type TestServer } from "@switchyard/test-utils";
import WebSocket, { WebSocketServer } from "ws";
import { closeAfterTest, raw, rawSocket, request, startBackend, startHttpProxy, statusOf, tcpServer, type Backend, type Env } from "./helpers.js";

describe("exchanges", () => {
  let backend: Backend | undefined;
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("answers pipelined requests in order", async () => {
    backend = await startBackend((req, res) => setTimeout(() => res.end(`r${req.url}`), req.url === "/1" ? 60 : 5));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const out = await raw(env.port, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    const bodies = [...out.matchAll(/\r\n\r\n(r\/\d)/g)].map((m) => m[1]);
    expect(bodies).to.deep.equal(["r/1", "r/2", "r/3"]);
    expect(out).to.match(/Connection: close\r\n\r\nr\/3$/);
  });

  it("honours Connection: close and does not forward it upstream", async () => {
    backend = await startBackend((req, res) => res.end(String(req.headers.connection)));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(out).to.match(/Connection: close/);
    expect(out).to.match(/undefined$/);
    expect(backend.connections).to.equal(1);
  });

  it("serves HTTP/1.0 clients: keep-alive only when asked, bodies close-delimited when needed", async () => {
    backend = await startBackend((_req, res) => {
      res.write("chunk");
      res.end("ed");
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const out = await raw(env.port, "GET / HTTP/1.0\r\n\r\n");
    expect(out).to.match(/^HTTP\/1\.1 200/);
    expect(out).to.not.match(/Transfer-Encoding/i);
    expect(out).to.match(/\r\n\r\nchunked$/);
  });

  it("answers 502 for a garbage status line", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.write("HTTP/banana\r\n\r\n")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    expect((await request(env.port)).status).to.equal(502);
  });

  it("aborts the client when the upstream resets mid-body", async () => {
    tcp = await tcpServer((s) =>
      s.once("data", () => {
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
        setTimeout(() => s.resetAndDestroy(), 20);
      }),
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
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

  it("answers 502 when a fresh upstream connection is reset before the response head, and does not retry it", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.resetAndDestroy()));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await c.waitFor(/request id: \S+\n/);
    expect(statusOf(out)).to.equal(502);
    expect(tcp.accepted).to.equal(1);
    // the client connection stays usable
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    await c.closed;
    expect(c.received().match(/HTTP\/1\.1 502 /g)).to.have.length(2);
    expect(tcp.accepted).to.equal(2);
  });

  it("cancels the upstream exchange when the client aborts", async () => {
    let upstreamClosed = false;
    backend = await startBackend((req) => req.socket.once("close", () => (upstreamClosed = true)));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => backend!.requests.length === 1);
    c.socket.destroy();
    await waitFor(() => upstreamClosed, 2000, "upstream socket closed");
    await waitFor(() => env!.proxy.proxy.stats().active === 0);
  });

  it("cancels a request waiting in the pool queue when the client aborts", async () => {
    const held: http.ServerResponse[] = [];
    backend = await startBackend((_req, res) => held.push(res));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`], options: { pool: { maxSockets: 1 } } }]);
    const first = request(env.port);
    await waitFor(() => held.length === 1);
    const c = await rawSocket(env.port);
    c.socket.write("GET /queued HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.queued === 1);
    c.socket.destroy();
    await waitFor(() => env!.protocol.poolStats(env!.proxy.proxy)[0]!.queued === 0);
    held[0]!.end("x");
    await first;
    expect(backend.requests.map((r) => r.url)).to.deep.equal(["/"]);
  });

  it("tunnels a WebSocket after relaying the 101 with all upgrade headers", async () => {
    const httpServer = await startBackend((_req, res) => res.end("plain"));
    backend = httpServer;
    const wss = new WebSocketServer({ server: httpServer.server, handleProtocols: (protocols) => [...protocols][1] ?? false });
    wss.on("connection", (ws, req) => {
      ws.send(`hello ${req.headers["sec-websocket-protocol"]} ${req.headers["x-custom"]}`);
      ws.on("message", (m) => ws.send(`echo:${m.toString()}`));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const ws = new WebSocket(`ws://127.0.0.1:${env.port}/chat`, ["one", "two"], { headers: { "X-Custom": "yes" } });
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on("message", (m) => {
        got.push(m.toString());
        if (got.length === 1) ws.send("ping");
        else ws.close();
      });
      ws.on("close", () => resolve());
      ws.on("error", reject);
    });
    expect(ws.protocol).to.equal("two");
    expect(got).to.deep.equal(["hello one,two yes", "echo:ping"]);
    wss.close();
  });

  it("passes Sec-WebSocket-Extensions through unchanged both ways, repeated request lines included", async () => {
    const up = closeAfterTest(
      await startRawBackend((_req, s) =>
        s.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=10\r\n\r\n",
        ),
      ),
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${up.port}`] }]);
    const c = await rawSocket(env.port);
    const extensions = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nsec-websocket-extensions: x-webkit-deflate-frame\r\n";
    c.socket.write(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extensions + "\r\n",
    );
    const out = await c.waitFor("\r\n\r\n");
    expect(statusOf(out)).to.equal(101);
    expect(header(parseHead(out.slice(0, out.indexOf("\r\n\r\n"))).headers, "sec-websocket-extensions")).to.equal(
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
    );
    expect(up.requests[0]!.head + "\r\n").to.include(extensions);
    c.socket.destroy();
  });

  it("answers a non-101 reply to an upgrade request as a normal response", async () => {
    backend = await startBackend((_req, res) => res.writeHead(403).end("no"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 500);
    expect(statusOf(out)).to.equal(403);
  });

  it("closes keep-alive sessions gracefully on proxy.close(), finishing the in-flight response", async () => {
    backend = await startBackend((req, res) => setTimeout(() => res.end(`done ${req.url}`), req.url === "/slow" ? 150 : 0));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const idle = await rawSocket(env.port);
    idle.socket.write("GET /idle HTTP/1.1\r\nHost: a\r\n\r\n");
    await idle.waitFor("done /idle");
    const busy = await rawSocket(env.port);
    busy.socket.write("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => backend!.requests.length === 2);
    const closing = env.proxy.proxy.close({ timeout: 2000 });
    env = undefined;
    await idle.closed;
    const out = await busy.waitFor("done /slow");
    expect(out).to.match(/Connection: close/);
    await busy.closed;
    await closing;
  });

  it("routes by host glob and path, strips prefixes and rewrites with params", async () => {
    backend = await startBackend((req, res) => res.end(`${req.url}`));
    const t = [`127.0.0.1:${backend.port}`];
    env = await startHttpProxy([
      { name: "api", match: { host: "*.example.com", path: "/api" }, targets: t, options: { stripPrefix: true } },
      { name: "users", match: { path: "/users/:id/*" }, targets: t, options: { rewrite: "/v2/people/:id/*" } },
      { name: "posts", match: { path: "/posts", method: "POST" }, targets: t },
    ]);
    expect((await request(env.port, { path: "/api/x?y=1", headers: { host: "a.example.com" } })).body).to.equal("/x?y=1");
    expect((await request(env.port, { path: "/api/x", headers: { host: "example.org" } })).status).to.equal(404);
    expect((await request(env.port, { path: "/users/7/a/b?q=2" })).body).to.equal("/v2/people/7/a/b?q=2");
    expect((await request(env.port, { path: "/posts", method: "POST", body: "" })).body).to.equal("/posts");
    expect((await request(env.port, { path: "/posts" })).status).to.equal(404);
  });

  it("answers 421 for a Host this listener does not serve", async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ match: { host: "a.test" }, targets: [`127.0.0.1:${backend.port}`] }], { listener: { hosts: ["a.test"] } });
    expect((await request(env.port, { headers: { host: "b.test" } })).status).to.equal(421);
    expect((await request(env.port, { headers: { host: "a.test" } })).status).to.equal(200);
  });
});
