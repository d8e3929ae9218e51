import { expect } from "chai";
import {
  Proxy,
  silentLogger,
  Stage,
  type HeaderPairs,
  type HttpRequestMessage,
  type HttpUpstreamResponse,
  type Route,
  type Target,
} from "@switchyard/core";
import { HeadersPlugin, type HeadersOptions } from "@switchyard/plugin-headers";

/** A stand-in for what protocol-http puts into onRequest, to test the plugin's logic in isolation. */
function fakeRequest(headers: HeaderPairs, over: Partial<HttpRequestMessage> & { clientIp?: string } = {}): HttpRequestMessage {
  const req = {
    protocol: "http" as const,
    connection: { id: "c1", listener: "web", protocol: "http", clientIp: over.clientIp ?? "203.0.113.9", clientPort: 50000, localPort: 8080, tls: false },
    id: "r1",
    route: undefined as Route | undefined,
    target: undefined as Target | undefined,
    response: undefined as HttpRequestMessage["response"],
    meta: {},
    method: "GET",
    url: "/",
    httpVersion: "1.1" as const,
    headers,
    body: null,
    bodyLength: undefined,
    upgrade: false,
    scheme: "http" as const,
    replayable: true,
    bufferBody: async () => true,
    respond(status: number, h?: HeaderPairs, body?: string | Buffer) {
      req.response = { status, ...(h ? { headers: h } : {}), ...(body !== undefined ? { body } : {}) };
    },
  };
  const { clientIp: _ignored, ...rest } = over;
  return Object.assign(req, rest) as HttpRequestMessage;
}

function fakeRoute(name: string, targets: Target[], options: Record<string, unknown> = {}): Route {
  return {
    name,
    targets,
    lb: "round-robin",
    priority: 0,
    options,
    dynamic: false,
    balancer: { pick: () => targets[0], acquire() {}, release() {} },
  };
}

function fakeResponse(headers: HeaderPairs, status = 200): HttpUpstreamResponse {
  return {
    protocol: "http",
    attempt: 1,
    target: undefined,
    error: undefined,
    retryable: true,
    requestSent: true,
    retry: undefined,
    status,
    statusMessage: "OK",
    httpVersion: "1.1",
    headers,
    body: null,
  };
}

function proxyWith(options: HeadersOptions = {}) {
  const plugin = new HeadersPlugin(options);
  const proxy = new Proxy({ listeners: [], plugins: [plugin], logger: silentLogger });
  return { proxy, plugin };
}

describe("HeadersPlugin on onRequest", () => {
  it("strips hop-by-hop fields and writes X-Forwarded-* from the connection", async () => {
    const { proxy } = proxyWith();
    const req = fakeRequest([
      ["Host", "shop.example:8080"],
      ["Connection", "keep-alive, X-Hop"],
      ["X-Hop", "1"],
      ["Keep-Alive", "timeout=5"],
      ["X-Forwarded-For", "6.6.6.6"],
      ["X-Forwarded-Proto", "https"],
      ["Accept", "*/*"],
    ]);
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers).to.deep.equal([
      ["Host", "shop.example:8080"],
      ["X-Forwarded-For", "203.0.113.9"],
      ["X-Forwarded-Proto", "http"],
      ["Accept", "*/*"],
      ["X-Forwarded-Host", "shop.example:8080"],
      ["X-Forwarded-Port", "8080"],
      ["Via", "1.1 switchyard"],
    ]);
  });

  it("appends to X-Forwarded-For and keeps X-Forwarded-Proto/Host/Port from a trusted proxy", async () => {
    const { proxy } = proxyWith({ trustedProxies: ["10.0.0.0/8"] });
    const req = fakeRequest(
      [
        ["Host", "internal"],
        ["X-Forwarded-For", "198.51.100.1"],
        ["X-Forwarded-Proto", "https"],
        ["X-Forwarded-Host", "shop.example"],
        ["X-Forwarded-Port", "443"],
      ],
      { clientIp: "10.1.2.3" },
    );
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers.slice(1, 5)).to.deep.equal([
      ["X-Forwarded-For", "198.51.100.1, 10.1.2.3"],
      ["X-Forwarded-Proto", "https"],
      ["X-Forwarded-Host", "shop.example"],
      ["X-Forwarded-Port", "443"],
    ]);
  });

  it("treats an IPv4-mapped IPv6 peer as its IPv4 address for trust", async () => {
    const { proxy } = proxyWith({ trustedProxies: ["10.0.0.0/8"] });
    const req = fakeRequest([["X-Forwarded-For", "198.51.100.1"]], { clientIp: "::ffff:10.0.0.7" });
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers[0]).to.deep.equal(["X-Forwarded-For", "198.51.100.1, ::ffff:10.0.0.7"]);
  });

  it("replaces a Forwarded field from an untrusted peer and extends one from a trusted peer", async () => {
    const { proxy } = proxyWith({ forwarded: true, xForwarded: false, trustedProxies: ["::1"] });
    const a = fakeRequest([["Host", "a.example:81"], ["Forwarded", "for=6.6.6.6"]], { clientIp: "2001:db8::5" });
    await proxy.hooks.onRequest.promise(a);
    expect(a.headers).to.deep.include(["Forwarded", 'for="[2001:db8::5]";host="a.example:81";proto=http']);
    const b = fakeRequest([["Host", "a.example"], ["Forwarded", "for=192.0.2.1"]], { clientIp: "::1" });
    await proxy.hooks.onRequest.promise(b);
    expect(b.headers).to.deep.include(["Forwarded", 'for=192.0.2.1, for="[::1]";host=a.example;proto=http']);
  });

  it("answers 508 when Via already names our pseudonym", async () => {
    const { proxy } = proxyWith({ pseudonym: "edge-1" });
    const req = fakeRequest([["Via", "1.1 lb, 1.1 EDGE-1"]]);
    await proxy.hooks.onRequest.promise(req);
    expect(req.response?.status).to.equal(508);
  });

  it("uses the request's HTTP version in Via", async () => {
    const { proxy } = proxyWith();
    const req = fakeRequest([["Via", "1.0 older"]], { httpVersion: "1.0" });
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers).to.deep.include(["Via", "1.0 older, 1.0 switchyard"]);
  });

  it("keeps Upgrade for a tunnel request", async () => {
    const { proxy } = proxyWith();
    const req = fakeRequest([["Host", "a"], ["Connection", "Upgrade"], ["Upgrade", "websocket"]], { upgrade: true });
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers).to.deep.include(["Upgrade", "websocket"]);
    expect(req.headers).to.deep.include(["Connection", "upgrade"]);
  });

  it("rewrites Host to the chosen target, omitting only the default port", async () => {
    const { proxy } = proxyWith({ rewriteHost: true });
    const req = fakeRequest([["Host", "public.example"]], { target: { host: "10.0.0.5", port: 8080 } });
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers[0]).to.deep.equal(["Host", "10.0.0.5:8080"]);
    expect(req.headers).to.deep.include(["X-Forwarded-Host", "public.example"]);
    const tls = fakeRequest([["Host", "public.example"]], { target: { host: "api.internal", port: 443, scheme: "https" } });
    await proxy.hooks.onRequest.promise(tls);
    expect(tls.headers[0]).to.deep.equal(["Host", "api.internal"]);
  });

  it("takes rewriteHost and rules from route.options.headers and from options.routes", async () => {
    const { proxy } = proxyWith({
      request: { set: { "X-Global": "g" } },
      routes: { api: { request: { append: { "X-Named": "n" } }, response: { set: { "X-Named-Res": "1" } } } },
    });
    const route = fakeRoute("api", [{ host: "backend", port: 80 }], {
      headers: { rewriteHost: true, request: { remove: ["cookie"], set: { "X-Route": "r" } }, response: { remove: ["server"] } },
    });
    const req = fakeRequest([["Host", "x"], ["Cookie", "a=1"]], { route });
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers[0]).to.deep.equal(["Host", "backend"]);
    expect(req.headers).to.not.deep.include(["Cookie", "a=1"]);
    expect(req.headers.slice(-3)).to.deep.equal([
      ["X-Global", "g"],
      ["X-Named", "n"],
      ["X-Route", "r"],
    ]);
    const res = fakeResponse([["Server", "nginx"], ["Connection", "close"], ["Content-Length", "0"]]);
    await proxy.hooks.onUpstreamResponse.promise(res, req);
    expect(res.headers).to.deep.equal([
      ["Content-Length", "0"],
      ["Via", "1.1 switchyard"],
      ["X-Named-Res", "1"],
    ]);
  });

  it("runs before TRANSFORM taps, which see cleaned headers", async () => {
    const { proxy } = proxyWith();
    let seen: HeaderPairs = [];
    proxy.hooks.onRequest.tap({ name: "user", stage: Stage.TRANSFORM }, (r) => {
      seen = [...(r as HttpRequestMessage).headers];
      return r;
    });
    await proxy.hooks.onRequest.promise(fakeRequest([["Connection", "x-a"], ["X-A", "1"]]));
    expect(seen.map(([k]) => k)).to.deep.equal(["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "Via"]);
  });

  it("reconfigure applies new options to the next message", async () => {
    const { proxy, plugin } = proxyWith();
    plugin.reconfigure({ pseudonym: "renamed", xForwarded: false });
    const req = fakeRequest([]);
    await proxy.hooks.onRequest.promise(req);
    expect(req.headers).to.deep.equal([["Via", "1.1 renamed"]]);
    expect(() => plugin.reconfigure({ via: "yes" })).to.throw(/via must be a boolean/);
  });
});

describe("HeadersPlugin on onUpstreamResponse", () => {
  it("strips hop-by-hop fields and appends Via with the response's version", async () => {
    const { proxy } = proxyWith();
    const res = fakeResponse([["Transfer-Encoding", "chunked"], ["Connection", "X-Up"], ["X-Up", "1"], ["Set-Cookie", "a"], ["Set-Cookie", "b"]]);
    res.httpVersion = "1.0";
    await proxy.hooks.onUpstreamResponse.promise(res, undefined);
    expect(res.headers).to.deep.equal([["Set-Cookie", "a"], ["Set-Cookie", "b"], ["Via", "1.0 switchyard"]]);
  });

  it("keeps Upgrade on a 101", async () => {
    const { proxy } = proxyWith();
    const res = fakeResponse([["Upgrade", "websocket"], ["Connection", "Upgrade"]], 101);
    await proxy.hooks.onUpstreamResponse.promise(res, undefined);
    expect(res.headers).to.deep.equal([["Upgrade", "websocket"], ["Connection", "upgrade"], ["Via", "1.1 switchyard"]]);
  });

  it("leaves upstream failures alone", async () => {
    const { proxy } = proxyWith();
    const res = { ...fakeResponse([]), status: undefined, error: new Error("x") } as unknown as HttpUpstreamResponse;
    await proxy.hooks.onUpstreamResponse.promise(res, undefined);
    expect(res.headers).to.deep.equal([]);
  });
});
