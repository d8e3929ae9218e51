import { expect } from "chai";
import type { Socket } from "node:net";
import { ConfigError, Proxy, silentLogger } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { RetryPlugin, type RetryEvent, type RetryOptions } from "@switchyard/plugin-retry";
import { closedPort, connectTo, expectNoActiveConnections, sleep, startProxy, waitFor, type StartedProxy } from "@switchyard/test-utils";
import { rawRequest, reply, startRawBackend, type RawBackend, type RawHandler } from "@switchyard/test-utils";

describe("RetryPlugin through a real HTTP proxy", () => {
  const backends: RawBackend[] = [];
  let started: StartedProxy | undefined;
  let events: RetryEvent[] = [];
  let protocol: HttpProtocol;

  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    for (const b of backends.splice(0)) await b.close();
    started = undefined;
    events = [];
  });

  async function backend(handler: RawHandler, onConnect?: (s: Socket) => boolean | void): Promise<RawBackend> {
    const b = await startRawBackend(handler, onConnect);
    backends.push(b);
    return b;
  }

  async function proxyTo(targets: string[], options: RetryOptions = {}, routeOptions: Record<string, unknown> = {}, listenerOptions: Record<string, unknown> = {}) {
    started = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0, options: listenerOptions }],
      routes: [{ name: "r", listener: "web", targets, options: routeOptions }],
      plugins: [(protocol = new HttpProtocol()), new RetryPlugin({ retries: 2, backoff: { base: 1, max: 5 }, ...options })],
    });
    RetryPlugin.getHooks(started.proxy).onRetry.tap("test", (e) => void events.push(e));
    return started.port();
  }

  const ok: RawHandler = (_r, s) => reply(s, 200, [], "ok");

  it("retries a refused connect on another target, even for a POST", async () => {
    const good = await backend(ok);
    const port = await proxyTo([`127.0.0.1:${await closedPort()}`, `127.0.0.1:${good.port}`]);
    const res = await rawRequest(port, "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    expect(res.status).to.equal(200);
    expect(good.requests[0]!.body.toString()).to.equal("hello");
    expect(events.map((e) => e.condition)).to.deep.equal(["connect"]);
  });

  it("retries a GET whose connection is reset before it is answered", async () => {
    let n = 0;
    const b = await backend((_r, s) => {
      if (n++ === 0) s.resetAndDestroy();
      else reply(s, 200, [], "second");
    });
    const port = await proxyTo([`127.0.0.1:${b.port}`]);
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.body).to.equal("second");
    expect(b.requests).to.have.length(2);
    expect(events[0]!.condition).to.equal("reset");
  });

  it("retries a request when the upstream resets before reading it", async () => {
    let n = 0;
    const b = await backend(ok, (s) => {
      if (n++ === 0) {
        s.resetAndDestroy();
        return false;
      }
    });
    const port = await proxyTo([`127.0.0.1:${b.port}`]);
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.status).to.equal(200);
  });

  it("never retries a POST after its body was sent, and relays the upstream's answer", async () => {
    const b = await backend((_r, s) => reply(s, 503, [["X-Real", "yes"]], "down"));
    const port = await proxyTo([`127.0.0.1:${b.port}`]);
    const res = await rawRequest(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    expect(res.status).to.equal(503);
    expect(res.body).to.equal("down");
    expect(b.requests).to.have.length(1);
    expect(events).to.have.length(0);
  });

  it("never retries a POST reset after sending", async () => {
    const b = await backend((_r, s) => s.resetAndDestroy());
    const port = await proxyTo([`127.0.0.1:${b.port}`]);
    const res = await rawRequest(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    expect(res.status).to.equal(502);
    expect(b.requests).to.have.length(1);
  });

  it("retries an idempotent PUT with a buffered body", async () => {
    let n = 0;
    const b = await backend((r, s) => (n++ === 0 ? reply(s, 503) : reply(s, 200, [], r.body.toString())));
    const port = await proxyTo([`127.0.0.1:${b.port}`]);
    const res = await rawRequest(port, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\ndata");
    expect(res.status).to.equal(200);
    expect(res.body).to.equal("data");
    expect(b.requests.map((r) => r.body.toString())).to.deep.equal(["data", "data"]);
  });

  it("waits Retry-After on a 503, capped by maxRetryAfter", async () => {
    let n = 0;
    const b = await backend((_r, s) => (n++ === 0 ? reply(s, 503, [["Retry-After", "30"]]) : reply(s, 200, [], "ok")));
    const port = await proxyTo([`127.0.0.1:${b.port}`], { maxRetryAfter: 300 });
    const t0 = Date.now();
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const took = Date.now() - t0;
    expect(res.status).to.equal(200);
    expect(events[0]!.delayMs).to.equal(300);
    expect(took).to.be.at.least(280);
    expect(took).to.be.below(5000);
  });

  it("retries across targets: a 503 on one, a 200 on the other", async () => {
    const bad = await backend((_r, s) => reply(s, 503, [], "bad"));
    const good = await backend((_r, s) => reply(s, 200, [], "good"));
    const port = await proxyTo([`127.0.0.1:${bad.port}`, `127.0.0.1:${good.port}`]);
    for (let i = 0; i < 2; i++) {
      const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      expect(res.body).to.equal("good");
    }
    expect(bad.requests.length).to.be.at.least(1);
  });

  it("relays the upstream's real 5xx when retries run out", async () => {
    const b = await backend((_r, s) => reply(s, 502, [["X-From", "upstream"]], "real 502 body"));
    const port = await proxyTo([`127.0.0.1:${b.port}`], { retries: 2 });
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.status).to.equal(502);
    expect(res.body).to.equal("real 502 body");
    expect(res.headers).to.deep.include(["X-From", "upstream"]);
    expect(b.requests).to.have.length(3);
  });

  it("retries a GET whose upstream does not answer in time", async () => {
    let n = 0;
    const b = await backend((_r, s) => {
      if (n++ > 0) reply(s, 200, [], "late ok");
    });
    // on the listener: protocol-http arms the head deadline before routing for a body-less request
    const port = await proxyTo([`127.0.0.1:${b.port}`], {}, {}, { upstreamHeadersTimeout: 150 });
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").catch((e: Error) => {
      throw new Error(`${e.message}; backend saw ${b.requests.length}, events ${JSON.stringify(events.map((x) => x.reason))}`);
    });
    expect(res.body, `backend saw ${b.requests.length}`).to.equal("late ok");
    expect(events[0]!.condition).to.equal("timeout");
  });

  it("keeps requestTimeout a total deadline: no retry once it fired, none left waiting in a backoff", async () => {
    const b = await backend(() => {}); // never answers
    const port = await proxyTo([`127.0.0.1:${b.port}`], { retries: 2 }, { requestTimeout: 200, upstreamHeadersTimeout: 4000 });
    const t0 = Date.now();
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.status).to.equal(504);
    expect(Date.now() - t0).to.be.below(1500); // before: a retry per attempt, 504 after ~8 s
    expect(b.sockets).to.have.length(1);
    expect(events).to.deep.equal([]);
  });

  it("cancels a Retry-After wait when requestTimeout fires in it, and sends nothing after", async () => {
    const b = await backend((_r, s) => reply(s, 503, [["Retry-After", "1"]], "busy"));
    const port = await proxyTo([`127.0.0.1:${b.port}`], { retries: 3, maxRetryAfter: 2000, budget: false }, { requestTimeout: 300 });
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.status).to.equal(504);
    expect(events.map((e) => e.condition)).to.deep.equal(["5xx"]);
    await sleep(1200); // past the Retry-After: an orphaned retry would send again now
    expect(b.requests).to.have.length(1);
    await expectNoActiveConnections(started!.proxy);
    // every upstream socket still open is idle in the pool: none is held by the finished exchange
    for (const p of protocol.poolStats(started!.proxy)) expect(p.open, JSON.stringify(p)).to.equal(p.idle);
  });

  it("sends 100 Continue itself when it buffers the body of an Expect: 100-continue request", async () => {
    const b = await backend((r, s) => reply(s, 200, [], `got ${r.body.length}`));
    const port = await proxyTo([`127.0.0.1:${b.port}`]);
    // a client that waits for the 100 before its body, as Node's does; before, the proxy waited
    // for the body to buffer it and the client for the 100, until bodyTimeout (408)
    const c = await connectTo(port);
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString("latin1")));
    const t0 = Date.now();
    c.write("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await waitFor(() => got.includes("100 Continue"), 2000);
    expect(Date.now() - t0).to.be.below(500); // at once, not after expectContinueTimeout
    c.write("hello");
    await waitFor(() => got.endsWith("got 5"), 2000);
    expect(got).to.match(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    expect(b.requests[0]!.headers.map(([k]) => k.toLowerCase())).to.not.include("expect");
    c.destroy();
  });

  it("cancels the retry when the client aborts during backoff", async () => {
    const b = await backend((_r, s) => reply(s, 503));
    const port = await proxyTo([`127.0.0.1:${b.port}`], { backoff: { base: 5000, max: 5000 }, retries: 3 });
    const c = await connectTo(port);
    c.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => events.length === 1);
    c.resetAndDestroy(); // an abort: a FIN alone is a legal half-close after a complete request
    await expectNoActiveConnections(started!.proxy);
    await sleep(100);
    expect(b.requests).to.have.length(1);
  });
});

describe("RetryPlugin route options", () => {
  const build = (options: Record<string, unknown>) =>
    new Proxy({
      logger: silentLogger,
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [{ name: "r", listener: "web", targets: ["127.0.0.1:1"], options }],
      plugins: [new HttpProtocol(), new RetryPlugin()],
    });

  it("are checked when the proxy is built, not at the first request", () => {
    expect(() => build({ retry: { retires: 1 } })).to.throw(ConfigError, 'route "r": options.retry.retires is not a per-route retry option');
    expect(() => build({ retry: { retries: -1 } })).to.throw(ConfigError, /^route "r": options\.retry\.retries/);
    expect(() => build({ idempotent: "yes" })).to.throw(ConfigError, 'route "r": options.idempotent: must be true or false');
    expect(() => build({ retry: false, idempotent: true })).to.not.throw();
    expect(() => build({ retry: { retries: 1, on: ["connect"] }, maxBodySize: 10 })).to.not.throw();
  });
});
