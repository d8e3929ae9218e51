import { expect } from "chai";
import { Proxy, silentLogger, type HeaderPairs, type HttpRequestMessage, type HttpUpstreamResponse } from "@switchyard/core";
import RequestIdPlugin from "proxy-plugin-request-id";

function request(headers: HeaderPairs): HttpRequestMessage {
  return {
    protocol: "http",
    connection: { id: "c", listener: "web", protocol: "http", clientIp: "127.0.0.1", clientPort: 1, localPort: 2, tls: false },
    id: "r",
    route: undefined,
    target: undefined,
    response: undefined,
    meta: {},
    method: "GET",
    url: "/",
    path: "/",
    httpVersion: "1.1",
    headers,
    body: null,
    bodyLength: undefined,
    upgrade: false,
    scheme: "http",
    replayable: true,
    bufferBody: async () => true,
    respond() {},
  };
}

function response(headers: HeaderPairs): HttpUpstreamResponse {
  return {
    protocol: "http",
    attempt: 1,
    target: undefined,
    error: undefined,
    retryable: true,
    requestSent: true,
    retry: undefined,
    status: 200,
    statusMessage: "OK",
    httpVersion: "1.1",
    headers,
    body: null,
  };
}

describe("RequestIdPlugin (hooks)", () => {
  function proxyWith(plugin: RequestIdPlugin) {
    return new Proxy({ listeners: [], plugins: [plugin], logger: silentLogger });
  }

  it("adds a generated id to the request and echoes it on the response", async () => {
    const proxy = proxyWith(new RequestIdPlugin({ generate: () => "id-1" }));
    const req = await proxy.hooks.onRequest.promise(request([["Host", "a"]]));
    expect((req as HttpRequestMessage).headers).to.deep.equal([["Host", "a"], ["X-Request-Id", "id-1"]]);
    expect(RequestIdPlugin.idOf(req)).to.equal("id-1");
    const res = (await proxy.hooks.onUpstreamResponse.promise(response([["X-Request-Id", "backend-made"]]), req)) as HttpUpstreamResponse;
    expect(res.headers).to.deep.equal([["X-Request-Id", "id-1"]]);
  });

  it("keeps a sane incoming id and replaces a suspicious one", async () => {
    const proxy = proxyWith(new RequestIdPlugin({ generate: () => "fresh" }));
    const kept = (await proxy.hooks.onRequest.promise(request([["x-request-id", "abc-123"]]))) as HttpRequestMessage;
    expect(kept.headers).to.deep.equal([["x-request-id", "abc-123"]]);
    const replaced = (await proxy.hooks.onRequest.promise(request([["X-Request-Id", "has space"]]))) as HttpRequestMessage;
    expect(replaced.headers).to.deep.equal([["X-Request-Id", "fresh"]]);
  });

  it("ignores incoming ids when trustIncoming is false, and uses UUIDs by default", async () => {
    const proxy = proxyWith(new RequestIdPlugin({ trustIncoming: false, header: "X-Trace" }));
    const req = (await proxy.hooks.onRequest.promise(request([["X-Trace", "client-chosen"]]))) as HttpRequestMessage;
    expect(req.headers[0]![1]).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("rejects a bad header name", () => {
    expect(() => new RequestIdPlugin({ header: "X Bad" })).to.throw(/header must be a header name/);
  });
});
