import { expect } from "chai";
import { ConfigError, Proxy, silentLogger, type RouteConfig } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { HeadersPlugin, type HeadersOptions } from "@switchyard/plugin-headers";
import { expectNoActiveConnections, startProxy, type StartedProxy } from "@switchyard/test-utils";
import { header, headerNames, rawRequest, reply, startRawBackend, type RawBackend } from "@switchyard/test-utils";

describe("HeadersPlugin through a real proxy", () => {
  let backend: RawBackend | undefined;
  let started: StartedProxy | undefined;

  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    await backend?.close();
    started = undefined;
    backend = undefined;
  });

  async function setup(options: HeadersOptions = {}, route: Partial<RouteConfig> = {}, resHeaders: Array<[string, string]> = []) {
    backend = await startRawBackend((_req, socket) => reply(socket, 200, resHeaders, "ok"));
    started = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [{ name: "r", listener: "web", targets: [`127.0.0.1:${backend.port}`], ...route }],
      plugins: [new HttpProtocol(), new HeadersPlugin(options)],
    });
    return started.port();
  }

  it("strips hop-by-hop fields and Connection tokens, and writes X-Forwarded-* and Via at the backend", async () => {
    const port = await setup();
    const res = await rawRequest(
      port,
      "GET /a HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n" +
        "Proxy-Authorization: Basic eA==\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
    );
    expect(res.status).to.equal(200);
    const seen = backend!.requests[0]!.headers;
    const names = headerNames(seen);
    for (const n of ["x-hop", "keep-alive", "proxy-authorization", "te", "upgrade"]) expect(names).to.not.include(n);
    expect(header(seen, "host")).to.equal("shop.example");
    expect(header(seen, "x-forwarded-for")).to.equal("127.0.0.1");
    expect(header(seen, "x-forwarded-proto")).to.equal("http");
    expect(header(seen, "x-forwarded-host")).to.equal("shop.example");
    expect(header(seen, "x-forwarded-port")).to.equal(String(port));
    expect(header(seen, "via")).to.equal("1.1 switchyard");
    expect(header(seen, "accept")).to.equal("*/*");
  });

  it("strips hop-by-hop fields from the response and adds Via", async () => {
    const port = await setup({}, {}, [["Connection", "X-Internal"], ["X-Internal", "1"], ["Keep-Alive", "timeout=1"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]]);
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(headerNames(res.headers)).to.not.include.members(["x-internal", "keep-alive"]);
    expect(res.headers.filter(([k]) => k.toLowerCase() === "set-cookie").map(([, v]) => v)).to.deep.equal(["a=1", "b=2"]);
    expect(header(res.headers, "via")).to.equal("1.1 switchyard");
    expect(res.body).to.equal("ok");
  });

  it("appends to X-Forwarded-For and keeps a trusted proxy's X-Forwarded-Proto", async () => {
    const port = await setup({ trustedProxies: ["127.0.0.0/8"] });
    await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n\r\n");
    const seen = backend!.requests[0]!.headers;
    expect(header(seen, "x-forwarded-for")).to.equal("198.51.100.7, 127.0.0.1");
    expect(header(seen, "x-forwarded-proto")).to.equal("https");
  });

  it("removes an untrusted client's Forwarded when it does not write one, and keeps a trusted proxy's", async () => {
    const port = await setup();
    await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=10.9.9.9;proto=https\r\n\r\n");
    expect(headerNames(backend!.requests[0]!.headers)).to.not.include("forwarded");
    await started!.proxy.close({ timeout: 100 });
    await backend!.close();
    started = undefined;
    const trustedPort = await setup({ trustedProxies: ["127.0.0.0/8"] });
    await rawRequest(trustedPort, "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=10.9.9.9;proto=https\r\n\r\n");
    expect(header(backend!.requests[0]!.headers, "forwarded")).to.equal("for=10.9.9.9;proto=https");
  });

  it("writes RFC 7239 Forwarded when asked", async () => {
    const port = await setup({ forwarded: true });
    await rawRequest(port, "GET / HTTP/1.1\r\nHost: a.example:8080\r\nForwarded: for=6.6.6.6\r\n\r\n");
    expect(header(backend!.requests[0]!.headers, "forwarded")).to.equal('for=127.0.0.1;host="a.example:8080";proto=http');
  });

  it("answers 508 to a request that already went through this proxy, without reaching the backend", async () => {
    const port = await setup({ pseudonym: "edge-7" });
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 lb, 1.1 edge-7\r\n\r\n");
    expect(res.status).to.equal(508);
    expect(backend!.requests).to.have.length(0);
  });

  it("writes the real protocol version in Via for HTTP/1.0", async () => {
    const port = await setup();
    await rawRequest(port, "GET / HTTP/1.0\r\nHost: a\r\nVia: 1.0 old\r\n\r\n");
    expect(header(backend!.requests[0]!.headers, "via")).to.equal("1.0 old, 1.0 switchyard");
  });

  it("rewrites Host to the target and keeps the original in X-Forwarded-Host", async () => {
    const port = await setup({ rewriteHost: true });
    await rawRequest(port, "GET / HTTP/1.1\r\nHost: public.example\r\n\r\n");
    const seen = backend!.requests[0]!.headers;
    expect(header(seen, "host")).to.equal(`127.0.0.1:${backend!.port}`);
    expect(header(seen, "x-forwarded-host")).to.equal("public.example");
  });

  it("rewriteHost with two targets: Host names the target of each attempt, also when a retry moves on", async () => {
    backend = await startRawBackend((_req, socket) => reply(socket, 503, [], "busy"));
    const other = await startRawBackend((_req, socket) => reply(socket, 200, [], "ok"));
    try {
      const retryOnce = {
        name: "retry-once",
        apply(proxy: import("@switchyard/core").Proxy) {
          proxy.hooks.onUpstreamResponse.tap("retry-once", (res) => {
            if (res.attempt === 1 && res.retryable && (res as { status?: number }).status === 503) res.retry = { delayMs: 0, reason: "test" };
            return res;
          });
        },
      };
      started = await startProxy({
        listeners: [{ name: "web", protocol: "http", port: 0 }],
        routes: [{ name: "r", listener: "web", targets: [`127.0.0.1:${backend.port}`, `127.0.0.1:${other.port}`] }],
        plugins: [new HttpProtocol(), new HeadersPlugin({ rewriteHost: true }), retryOnce],
      });
      const port = started.port();
      // round robin: the first request starts on `backend` (503), is retried on `other`
      const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: public.example\r\n\r\n");
      expect(res.status).to.equal(200);
      expect(header(backend.requests[0]!.headers, "host")).to.equal(`127.0.0.1:${backend.port}`);
      expect(header(other.requests[0]!.headers, "host")).to.equal(`127.0.0.1:${other.port}`);
      expect(header(other.requests[0]!.headers, "x-forwarded-host")).to.equal("public.example");
      // the second request starts on `other` directly: Host is its target's, not a guess
      await rawRequest(port, "GET / HTTP/1.1\r\nHost: public.example\r\n\r\n");
      expect(header(other.requests[1]!.headers, "host")).to.equal(`127.0.0.1:${other.port}`);
    } finally {
      await other.close();
    }
  });

  it("applies set/append/remove rules from the route in both directions", async () => {
    const port = await setup({}, { options: { headers: { request: { remove: ["cookie"], set: { "X-Env": "test" }, append: { "X-Tag": ["a", "b"] } }, response: { remove: ["server"], set: { "X-Served-By": "r" } } } } }, [["Server", "nginx"]]);
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\n\r\n");
    const seen = backend!.requests[0]!.headers;
    expect(headerNames(seen)).to.not.include("cookie");
    expect(header(seen, "x-env")).to.equal("test");
    expect(seen.filter(([k]) => k === "X-Tag").map(([, v]) => v)).to.deep.equal(["a", "b"]);
    expect(headerNames(res.headers)).to.not.include("server");
    expect(header(res.headers, "x-served-by")).to.equal("r");
  });

  it("keeps Upgrade for a WebSocket-style tunnel and relays the 101", async () => {
    backend = await startRawBackend((req, socket) => {
      socket.removeAllListeners("data");
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
      socket.on("data", (d: Buffer) => socket.write(d));
      void req;
    });
    started = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [{ name: "r", listener: "web", targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [new HttpProtocol(), new HeadersPlugin()],
    });
    const res = await rawRequest(started.port(), "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect(res.status).to.equal(101);
    expect(header(res.headers, "upgrade")).to.equal("websocket");
    expect(header(res.headers, "connection")?.toLowerCase()).to.equal("upgrade");
    const seen = backend.requests[0]!.headers;
    expect(header(seen, "upgrade")).to.equal("websocket");
    expect(header(seen, "connection")?.toLowerCase()).to.equal("upgrade");
    expect(header(seen, "sec-websocket-key")).to.equal("dGhlIHNhbXBsZSBub25jZQ==");
  });
});

describe("HeadersPlugin route options", () => {
  const build = (options: Record<string, unknown>) =>
    new Proxy({
      logger: silentLogger,
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [{ name: "r", listener: "web", targets: ["127.0.0.1:1"], options }],
      plugins: [new HttpProtocol(), new HeadersPlugin()],
    });

  it("are checked when the proxy is built, not at the first request", () => {
    expect(() => build({ headers: "x" })).to.throw(ConfigError, 'route "r": options.headers: must be an object');
    expect(() => build({ headers: { request: { set: { "Bad Name": "x" } } } })).to.throw(ConfigError, /invalid header name/);
    // rules belong under request/response: a bare "set" was once ignored without a word
    expect(() => build({ headers: { set: { "X-A": "1" } } })).to.throw(
      ConfigError,
      'route "r": options.headers: unknown key "set" (put "set" under "request" or "response")',
    );
    expect(() => build({ header: {} })).to.throw(ConfigError, 'unknown option "header" (did you mean "headers"?)');
    expect(() => build({ headers: { rewriteHost: "api.internal", response: { set: { "X-A": "1" } } }, stripPrefix: true })).to.not.throw();
  });
});
