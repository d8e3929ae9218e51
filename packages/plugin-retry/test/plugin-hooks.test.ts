import { Readable } from "node:stream";
import { expect } from "chai";
import {
  Proxy,
  silentLogger,
  UpstreamConnectError,
  UpstreamResetError,
  type HeaderPairs,
  type HttpRequestMessage,
  type HttpUpstreamResponse,
  type ProxyError,
  type Route,
} from "@switchyard/core";
import { RetryPlugin, type RetryOptions } from "@switchyard/plugin-retry";

interface FakeRequest extends HttpRequestMessage {
  buffered: number[];
}

function fakeRequest(method: string, body: { length?: number; replayable?: boolean } | null, route?: Route): FakeRequest {
  const req = {
    protocol: "http" as const,
    connection: { id: "c", listener: "web", protocol: "http", clientIp: "127.0.0.1", clientPort: 1, localPort: 2, tls: false },
    id: "r",
    route,
    target: undefined,
    response: undefined,
    meta: {},
    method,
    url: "/",
    httpVersion: "1.1" as const,
    headers: [] as HeaderPairs,
    body: body ? Readable.from([]) : null,
    bodyLength: body?.length,
    upgrade: false,
    scheme: "http" as const,
    replayable: body === null || body.replayable === true,
    buffered: [] as number[],
    async bufferBody(max: number) {
      req.buffered.push(max);
      req.replayable = true;
      return true;
    },
    respond() {},
  };
  return req as unknown as FakeRequest;
}

function fakeRoute(options: Record<string, unknown>): Route {
  return { name: "r", targets: [], lb: "round-robin", priority: 0, options, dynamic: false, balancer: { pick: () => undefined, acquire() {}, release() {} } };
}

function response(o: { status?: number; error?: ProxyError; attempt?: number; requestSent?: boolean; headers?: HeaderPairs }): HttpUpstreamResponse {
  return {
    protocol: "http",
    attempt: o.attempt ?? 1,
    target: { host: "127.0.0.1", port: 1 },
    error: o.error,
    retryable: true,
    requestSent: o.requestSent ?? true,
    retry: undefined,
    status: o.status,
    statusMessage: undefined,
    httpVersion: "1.1",
    headers: o.headers ?? [],
    body: null,
  };
}

function setup(options: RetryOptions = {}) {
  const plugin = new RetryPlugin({ backoff: { base: 10, max: 40 }, ...options }, { random: () => 0.5 });
  const proxy = new Proxy({ listeners: [], plugins: [plugin], logger: silentLogger });
  return { proxy, plugin };
}

describe("RetryPlugin on onRequest", () => {
  it("buffers a small body of an idempotent request up to bufferLimit", async () => {
    const { proxy } = setup({ bufferLimit: 1000 });
    const put = fakeRequest("PUT", { length: 10 });
    await proxy.hooks.onRequest.promise(put);
    expect(put.buffered).to.deep.equal([1000]);
    const chunked = fakeRequest("DELETE", {});
    await proxy.hooks.onRequest.promise(chunked);
    expect(chunked.buffered).to.deep.equal([1000]);
  });

  it("does not buffer a body that is too large, a POST, or an already replayable body", async () => {
    const { proxy } = setup({ bufferLimit: 1000 });
    for (const req of [fakeRequest("PUT", { length: 1001 }), fakeRequest("POST", { length: 10 }), fakeRequest("PUT", { length: 10, replayable: true }), fakeRequest("GET", null)]) {
      await proxy.hooks.onRequest.promise(req);
      expect(req.buffered, req.method).to.deep.equal([]);
    }
  });

  it("treats a POST on a route marked idempotent like an idempotent request", async () => {
    const { proxy } = setup();
    const req = fakeRequest("POST", { length: 5 }, fakeRoute({ idempotent: true }));
    await proxy.hooks.onRequest.promise(req);
    expect(req.buffered).to.deep.equal([65536]);
    const res = await proxy.hooks.onUpstreamResponse.promise(response({ status: 503 }), req);
    expect(res.retry).to.not.equal(undefined);
  });
});

describe("RetryPlugin on onUpstreamResponse", () => {
  async function run(proxy: Proxy, req: FakeRequest, res: HttpUpstreamResponse) {
    await proxy.hooks.onRequest.promise(req);
    return proxy.hooks.onUpstreamResponse.promise(res, req);
  }

  it("asks for a retry of a GET answered 503, on another target, with jittered backoff", async () => {
    const { proxy } = setup();
    const res = await run(proxy, fakeRequest("GET", null), response({ status: 503 }));
    expect(res.retry).to.deep.equal({ delayMs: 5, reason: "5xx: status 503", otherTarget: true });
  });

  it("retries a reset at once when the response says it ran on a reused pooled socket (reusedSocket)", async () => {
    const { proxy } = setup();
    const stale = Object.assign(response({ error: new UpstreamResetError("gone") }), { reusedSocket: true });
    const r1 = await run(proxy, fakeRequest("GET", null), stale);
    expect(r1.retry?.delayMs).to.equal(0);
    expect(r1.retry?.reason).to.match(/stale pooled connection/);
    const fresh = Object.assign(response({ error: new UpstreamResetError("gone") }), { reusedSocket: false });
    const r2 = await run(proxy, fakeRequest("GET", null), fresh);
    expect(r2.retry?.delayMs).to.equal(5);
  });

  it("uses Retry-After on a 503", async () => {
    const { proxy } = setup();
    const res = await run(proxy, fakeRequest("GET", null), response({ status: 503, headers: [["Retry-After", "1"]] }));
    expect(res.retry?.delayMs).to.equal(1000);
  });

  it("never retries a POST after it may have been sent, but does retry its connect failure", async () => {
    const { proxy } = setup();
    expect((await run(proxy, fakeRequest("POST", { length: 3 }), response({ status: 503 }))).retry).to.equal(undefined);
    expect((await run(proxy, fakeRequest("POST", { length: 3 }), response({ error: new UpstreamResetError() }))).retry).to.equal(undefined);
    const connect = await run(proxy, fakeRequest("POST", { length: 3 }), response({ error: new UpstreamConnectError("refused"), requestSent: false }));
    expect(connect.retry?.reason).to.match(/^connect/);
  });

  it("does not retry an idempotent request whose body could not be buffered", async () => {
    const { proxy } = setup({ bufferLimit: 2 });
    const res = await run(proxy, fakeRequest("PUT", { length: 3 }), response({ error: new UpstreamResetError() }));
    expect(res.retry).to.equal(undefined);
  });

  it("leaves successes and other taps' decisions alone", async () => {
    const { proxy } = setup();
    expect((await run(proxy, fakeRequest("GET", null), response({ status: 200 }))).retry).to.equal(undefined);
    const mine = response({ status: 503 });
    mine.retry = { delayMs: 7, reason: "mine" };
    expect((await run(proxy, fakeRequest("GET", null), mine)).retry).to.deep.equal({ delayMs: 7, reason: "mine" });
  });

  it("applies per-route overrides from route.options.retry", async () => {
    const { proxy } = setup();
    const off = fakeRequest("GET", null, fakeRoute({ retry: false }));
    expect((await run(proxy, off, response({ status: 503 }))).retry).to.equal(undefined);
    const more = fakeRequest("GET", null, fakeRoute({ retry: { retries: 5, statuses: [500] } }));
    expect((await run(proxy, more, response({ status: 500, attempt: 4 }))).retry).to.not.equal(undefined);
    const bad = fakeRequest("GET", null, fakeRoute({ retry: { budget: false } }));
    let failed: unknown;
    await run(proxy, bad, response({ status: 503 })).catch((e: unknown) => (failed = e));
    expect((failed as { code?: string }).code).to.equal("PRX_ERR_PLUGIN");
  });

  it("counts retries in request.meta and reports them on onRetry", async () => {
    const { proxy } = setup();
    const seen: number[] = [];
    RetryPlugin.getHooks(proxy).onRetry.tap("t", (e) => void seen.push(e.status ?? 0));
    const req = fakeRequest("GET", null);
    await run(proxy, req, response({ status: 502 }));
    expect(req.meta.RetryPlugin).to.deep.equal({ idempotent: true, retries: 1 });
    expect(seen).to.deep.equal([502]);
  });

  it("reconfigure takes new options", async () => {
    const { proxy, plugin } = setup();
    plugin.reconfigure({ retries: 0 });
    expect((await run(proxy, fakeRequest("GET", null), response({ status: 503 }))).retry).to.equal(undefined);
    expect(() => plugin.reconfigure({ on: ["sometimes"] })).to.throw(/on must be an array/);
    expect(() => new RetryPlugin({ retries: -1 })).to.throw(/retries must be a non-negative integer/);
    expect(() => new RetryPlugin({ retries: 3, backoff: { base: 10, max: 100 } })).to.not.throw();
  });
});
