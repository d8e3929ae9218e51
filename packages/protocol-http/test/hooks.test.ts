import { expect } from "chai";
import { appendHeader, getHeader, isHttpRequest, isHttpResponse, parseTargetForTest, setHeader, Stage, type HttpRequestMessage, type ProxyPlugin } from "./hook-helpers.js";
import { startRawBackend } from "@switchyard/test-utils";
import { closeAfterTest, rawSocket, request, startBackend, startHttpProxy, type Backend, type Env } from "./helpers.js";

function plugin(name: string, apply: ProxyPlugin["apply"]): ProxyPlugin {
  return { name, apply };
}

describe("hooks", () => {
  let a: Backend | undefined;
  let b: Backend | undefined;
  let env: Env | undefined;

  it("gives onRequest taps the method, url, raw header pairs and route; their changes go upstream", async () => {
    a = await startBackend((req, res) => res.end(`${req.method} ${req.url} ${req.headers["x-added"]} ${JSON.stringify(req.rawHeaders.slice(0, 4))}`));
    let seen: HttpRequestMessage | undefined;
    env = await startHttpProxy([{ name: "r1", targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [
        plugin("edit", (proxy) =>
          proxy.hooks.onRequest.tap({ name: "edit", stage: Stage.TRANSFORM }, (req) => {
            if (!isHttpRequest(req)) return req;
            seen = req;
            req.url = "/rewritten" + req.url;
            appendHeader(req.headers, "X-Added", "yes");
            return req;
          }),
        ),
      ],
    });
    const r = await request(env.port, { path: "/p?q=1", headers: { "X-First": "1" } });
    expect(seen!.method).to.equal("GET");
    expect(seen!.route?.name).to.equal("r1");
    expect(seen!.headers[0]![0]).to.match(/^X-First$/);
    expect(r.body).to.match(/^GET \/rewritten\/p\?q=1 yes /);
  });

  it("lets a tap answer directly (401) without going upstream", async () => {
    a = await startBackend((_req, res) => res.end("upstream"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [
        plugin("auth", (proxy) =>
          proxy.hooks.onRequest.tap("auth", (req) => {
            if (isHttpRequest(req) && getHeader(req.headers, "authorization") === undefined) {
              req.respond(401, [["WWW-Authenticate", "Basic"]], "who are you?");
            }
            return req;
          }),
        ),
      ],
    });
    const r = await request(env.port, { method: "POST", body: "ignored body" });
    expect(r.status).to.equal(401);
    expect(r.headers["www-authenticate"]).to.equal("Basic");
    expect(r.body).to.equal("who are you?");
    expect(a.requests.length).to.equal(0);
  });

  it("lets a tap pick another target", async () => {
    a = await startBackend((_req, res) => res.end("a"));
    b = await startBackend((_req, res) => res.end("b"));
    const other = parseTargetForTest(`127.0.0.1:${b.port}`);
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [plugin("pick", (proxy) => proxy.hooks.onRequest.tap("pick", (req) => ((req.target = other), req)))],
    });
    expect((await request(env.port)).body).to.equal("b");
  });

  it("answers 500 with a request id when an onRequest tap throws", async () => {
    a = await startBackend((_req, res) => res.end("a"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [
        plugin("boom", (proxy) =>
          proxy.hooks.onRequest.tap("boom", () => {
            throw new Error("kaput");
          }),
        ),
      ],
    });
    const errors: string[] = [];
    env.proxy.proxy.events.on("pluginError", (e) => errors.push(e.plugin));
    const r = await request(env.port);
    expect(r.status).to.equal(500);
    expect(r.body).to.match(/request id: \S+/);
    expect(errors).to.deep.equal(["boom"]);
  });

  it("answers 500 when a tap turns a request into HEAD or a HEAD into another method, framed for the client's own method", async () => {
    a = await startBackend((_req, res) => res.end("upstream body"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [
        plugin("swap", (proxy) =>
          proxy.hooks.onRequest.tap("swap", (req) => {
            if (isHttpRequest(req) && getHeader(req.headers, "x-swap") !== undefined) req.method = req.method === "HEAD" ? "GET" : "HEAD";
            return req;
          }),
        ),
      ],
    });
    const c = await rawSocket(env.port);
    c.socket.write("GET /1 HTTP/1.1\r\nHost: a\r\nX-Swap: 1\r\n\r\n");
    await c.waitFor(/request id: \S+\n$/);
    expect(c.received()).to.match(/^HTTP\/1\.1 500 /);
    // the HEAD's 500 is the head alone: the next response on the connection starts right after it
    c.socket.write("HEAD /2 HTTP/1.1\r\nHost: a\r\nX-Swap: 1\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor(/upstream body$/);
    const after = c.received().slice(c.received().indexOf("\n", c.received().indexOf("request id")) + 1);
    expect(after).to.match(/^HTTP\/1\.1 500 [^]*?\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nupstream body$/);
    expect(after.split("request id").length).to.equal(1);
    expect(a.requests.map((r) => r.method)).to.deep.equal(["GET"]);
    c.socket.destroy();
  });

  it("keeps the connection when a tap fails after its exchange was already answered (upstream reset while the tap read the body)", async () => {
    const backend = closeAfterTest(
      await startRawBackend((req, socket) => {
        if (!req.requestLine.includes("/first")) return void socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut short");
        setTimeout(() => socket.destroy(), 20);
      }),
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], {
      plugins: [
        plugin("reader", (proxy) =>
          proxy.hooks.onUpstreamResponse.tapPromise("reader", async (res) => {
            if (!isHttpResponse(res) || res.body === null || res.status !== 200 || res.headers.some(([, v]) => v === "2")) return res;
            for await (const _ of res.body) {
              // reads until the upstream's reset fails the stream: the tap rejects, late
            }
            return res;
          }),
        ),
      ],
    });
    const c = await rawSocket(env.port);
    c.socket.write("GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor(/\r\n\r\nok$/);
    expect(c.received()).to.match(/^HTTP\/1\.1 502 [^]*HTTP\/1\.1 200 OK\r\n/);
    c.socket.destroy();
  });

  it("frames the body it carries whatever Content-Length a tap leaves, in both directions", async () => {
    // the body is the client's (or the upstream's): a length a tap removed or changed would
    // desync the next hop, so the real one is written in its place
    const origin = closeAfterTest(await startRawBackend((req, socket) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n${req.requestLine.includes("/2") ? "again" : "world"}`)));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${origin.port}`] }], {
      plugins: [
        plugin("tamper", (proxy) => {
          proxy.hooks.onRequest.tap("tamper", (req) => {
            if (isHttpRequest(req)) req.headers.splice(0, req.headers.length, ...req.headers.filter(([k]) => k.toLowerCase() !== "content-length"));
            return req;
          });
          proxy.hooks.onUpstreamResponse.tap("tamper", (res) => {
            if (isHttpResponse(res) && res.status !== undefined) setHeader(res.headers, "Content-Length", "2");
            return res;
          });
        }),
      ],
    });
    const c = await rawSocket(env.port);
    c.socket.write("POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    await c.closed;
    expect(c.received().match(/HTTP\/1\.1 200 OK\r\nContent-Length: 5\r\n/g)).to.have.length(2);
    expect(c.received()).to.include("\r\n\r\nworldHTTP/1.1 200 OK");
    expect(c.received().endsWith("again")).to.equal(true);
    expect(origin.requests.map((r) => [r.requestLine, r.body.toString()])).to.deep.equal([
      ["POST /1 HTTP/1.1", "hello"],
      ["GET /2 HTTP/1.1", ""],
    ]);
    expect(origin.requests[0]!.headers).to.deep.include(["Content-Length", "5"]);
  });

  it("lets onUpstreamResponse taps change status and headers, and see the body stream", async () => {
    a = await startBackend((_req, res) => res.writeHead(200, { "X-Up": "1" }).end("payload"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`] }], {
      plugins: [
        plugin("res", (proxy) =>
          proxy.hooks.onUpstreamResponse.tap("res", (res) => {
            if (isHttpResponse(res) && res.status === 200) {
              expect(res.body).to.not.equal(null); // opening the stream: the body flows through it
              res.status = 203;
              setHeader(res.headers, "X-Up", "changed");
            }
            return res;
          }),
        ),
      ],
    });
    const r = await request(env.port);
    expect(r.status).to.equal(203);
    expect(r.headers["x-up"]).to.equal("changed");
    expect(r.body).to.equal("payload");
  });

  it("retries on another target when a tap asks, after buffering the body", async () => {
    a = await startBackend((req, res) => {
      req.resume();
      res.writeHead(503).end("a down");
    });
    b = await startBackend((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => res.end(`b got ${body}`));
    });
    env = await startHttpProxy([{ targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] }], {
      plugins: [
        plugin("retry", (proxy) => {
          proxy.hooks.onRequest.tapPromise("retry", async (req) => {
            if (isHttpRequest(req)) await req.bufferBody(1024);
            return req;
          });
          proxy.hooks.onUpstreamResponse.tap("retry", (res) => {
            if (isHttpResponse(res) && res.status === 503 && res.retryable && res.attempt < 3) res.retry = { delayMs: 10, reason: "503" };
            return res;
          });
        }),
      ],
    });
    const r = await request(env.port, { method: "PUT", body: "data" });
    expect(r.body).to.equal("b got data");
  });

  it("gives taps the upstream error and relays their retry after a refused connect", async () => {
    b = await startBackend((_req, res) => res.end("b"));
    const errors: string[] = [];
    env = await startHttpProxy([{ targets: ["127.0.0.1:1", `127.0.0.1:${b.port}`] }], {
      plugins: [
        plugin("retry", (proxy) =>
          proxy.hooks.onUpstreamResponse.tap("retry", (res) => {
            if (res.error) {
              errors.push(res.error.code);
              if (res.retryable) res.retry = { delayMs: 0, reason: "connect" };
            }
            return res;
          }),
        ),
      ],
    });
    const r = await request(env.port);
    expect(r.body).to.equal("b");
    expect(errors).to.deep.equal(["PRX_ERR_UPSTREAM_CONNECT"]);
  });
});
