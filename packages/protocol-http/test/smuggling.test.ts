import { expect } from "chai";
import { startRawBackend, reply } from "@switchyard/test-utils";
import { closeAfterTest, raw, startBackend, startHttpProxy, statusOf, type Backend, type Env } from "./helpers.js";

const CASES: Array<[string, string]> = [
  ["Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
  ["duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"],
  ["invalid Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"],
  ["list Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"],
  ["Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"],
  ["Transfer-Encoding identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"],
  ["repeated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
  ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n  two\r\n\r\n"],
  ["bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\rtwo\r\n\r\n"],
  ["bare LF line ending", "GET / HTTP/1.1\nHost: a\n\n"],
  ["space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n"],
  ["invalid header name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"],
  ["duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"],
  ["missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"],
  ["invalid chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"],
  ["malformed request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"],
  ["dot segments above the root", "GET /public/../../admin HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["%2e dot segments above the root", "GET /%2e%2E/admin HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["an Upgrade with Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: gzip\r\n\r\nabc"],
];

describe("request smuggling shapes", () => {
  let backend: Backend;
  let env: Env;
  before(async () => {
    backend = await startBackend((_req, res) => res.end("reached"));
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
  });
  after(async () => {
    await env.close();
    await backend.close();
  });

  for (const [name, data] of CASES) {
    it(`answers 400 and closes for ${name}`, async () => {
      const t0 = Date.now();
      const out = await raw(env.port, data);
      expect(statusOf(out), out).to.equal(400);
      expect(out).to.match(/Connection: close/);
      // closed by the proxy, not by raw()'s 3 s give-up
      expect(Date.now() - t0).to.be.below(1000);
      expect(out).to.match(/request id: /);
      expect(backend.requests.length).to.equal(0);
    });
  }

  it("answers 505 for HTTP/2.0 request lines", async () => {
    expect(statusOf(await raw(env.port, "GET / HTTP/2.0\r\nHost: a\r\n\r\n"))).to.equal(505);
  });

  it("answers 405 for CONNECT", async () => {
    expect(statusOf(await raw(env.port, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"))).to.equal(405);
  });

  it("refuses a body smuggled in a second request on the same connection", async () => {
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    expect(out).to.match(/^HTTP\/1\.1 200 /);
    expect(out).to.match(/HTTP\/1\.1 400 /);
    expect(backend.requests.length).to.equal(1);
    backend.requests.length = 0;
  });
});

// An Upgrade request that declares a body: the proxy once stopped reading after its head (as for
// a WebSocket handshake), so the body was parsed as the client's next request — routed on its own
// — while the Content-Length went upstream, where the body was taken from whatever came next on
// that pooled socket: a route bypass and a desync. Now it is an ordinary request without Upgrade.
describe("Upgrade requests with a body", () => {
  it("forwards the body as the body (Content-Length), drops the Upgrade, and never routes the body", async () => {
    const origin = closeAfterTest(await startRawBackend((req, socket) => reply(socket, 200, [], `seen ${req.requestLine.split(" ")[1]}`)));
    const env = await startHttpProxy([{ listener: "web", match: { path: "/public" }, targets: [`127.0.0.1:${origin.port}`] }]);
    const smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    const out = await raw(env.port, [
      `POST /public/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      "GET /public/next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ]);
    expect(out.match(/HTTP\/1\.1 \d+/g)).to.deep.equal(["HTTP/1.1 200", "HTTP/1.1 200"]);
    expect(out).to.include("seen /public/ws").and.to.include("seen /public/next").and.not.to.include("404");
    expect(origin.requests.map((r) => r.requestLine)).to.deep.equal(["POST /public/ws HTTP/1.1", "GET /public/next HTTP/1.1"]);
    expect(origin.requests[0]!.body.toString()).to.equal(smuggled);
    expect(origin.requests[0]!.headers.map(([k]) => k.toLowerCase())).to.not.include("upgrade");
  });

  it("does the same for a chunked body", async () => {
    const backend = await startBackend((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => res.end(`${req.url} upgrade=${req.headers.upgrade ?? "-"} body=${JSON.stringify(body)}`));
    });
    const env = await startHttpProxy([{ listener: "web", match: { path: "/public" }, targets: [`127.0.0.1:${backend.port}`] }]);
    const smuggled = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    const out = await raw(env.port, [
      `POST /public/h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`,
      "GET /public/next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ]);
    expect(out.match(/HTTP\/1\.1 \d+/g)).to.deep.equal(["HTTP/1.1 200", "HTTP/1.1 200"]);
    expect(out).to.include(`/public/h2c upgrade=- body=${JSON.stringify(smuggled)}`);
    expect(out).to.include("/public/next upgrade=- body=\"\"");
    expect(backend.requests.map((r) => r.url)).to.deep.equal(["/public/h2c", "/public/next"]);
  });

  it("still tunnels an Upgrade without a body (Content-Length: 0 counts as none)", async () => {
    const origin = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
        socket.on("data", (d: Buffer) => socket.write(d));
      }),
    );
    const env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${origin.port}`] }]);
    const out = await raw(env.port, ["GET /t HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\nContent-Length: 0\r\n\r\n", "ping"], 500);
    expect(out).to.match(/^HTTP\/1\.1 101 /);
    expect(out.endsWith("\r\n\r\nping")).to.equal(true);
  });
});

// RFC 9110 §7.6.1 lets Connection name fields to remove before forwarding; Host and the framing
// fields are never removed: `Connection: content-length` once made the proxy strip the body's
// length, so the upstream read the body as a second request that the proxy never routed.
describe("Connection naming Host or a framing field", () => {
  it("keeps Content-Length and Host on the request: one request, the body as its body", async () => {
    const origin = closeAfterTest(await startRawBackend((req, socket) => reply(socket, 200, [], `seen ${req.requestLine.split(" ")[1]}`)));
    const env = await startHttpProxy([{ listener: "web", match: { path: "/x" }, targets: [`127.0.0.1:${origin.port}`] }]);
    const inner = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    const out = await raw(env.port, [
      `POST /x HTTP/1.1\r\nHost: a\r\nConnection: content-length, host, transfer-encoding, x-drop\r\nX-Drop: 1\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`,
      "GET /x/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ]);
    expect(out.match(/HTTP\/1\.1 \d+/g)).to.deep.equal(["HTTP/1.1 200", "HTTP/1.1 200"]);
    expect(origin.requests.map((r) => r.requestLine)).to.deep.equal(["POST /x HTTP/1.1", "GET /x/2 HTTP/1.1"]);
    const names = origin.requests[0]!.headers.map(([k]) => k.toLowerCase());
    expect(names).to.include("content-length").and.to.include("host").and.not.to.include("x-drop");
    expect(origin.requests[0]!.body.toString()).to.equal(inner);
  });

  it("keeps Content-Length on a response whose Connection names it, so the next response is framed right", async () => {
    const origin = closeAfterTest(
      await startRawBackend((req, socket) =>
        socket.write(`HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\n${req.requestLine.includes("/1 ") ? "first" : "other"}`),
      ),
    );
    const env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${origin.port}`] }]);
    const out = await raw(env.port, ["GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]);
    const first = out.slice(0, out.indexOf("first") + 5);
    expect(first).to.match(/\r\nContent-Length: 5\r\n/i);
    expect(out.match(/HTTP\/1\.1 200/g)).to.have.length(2);
    expect(out.endsWith("other")).to.equal(true);
  });
});
