import { expect } from "chai";
import { isHttpRequest, type ProxyPlugin, type RequestRecord } from "@switchyard/core";
import { closedPort, waitFor } from "@switchyard/test-utils";
import { rawSocket, request, startBackend, startHttpProxy } from "./helpers.js";

// The access-log record: one `requestComplete` event per HTTP request, with what an operator
// reads first (method, path, status, time, bytes, attempts, error code).

describe("requestComplete records", () => {
  it("gives one record per request of a keep-alive connection, with its own fields", async () => {
    const backend = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => res.end(`seen ${req.url}`));
    });
    const env = await startHttpProxy([{ name: "app", targets: [`127.0.0.1:${backend.port}`] }]);
    const records: RequestRecord[] = [];
    env.proxy.proxy.events.on("requestComplete", (r) => records.push(r));
    const c = await rawSocket(env.port);
    c.socket.write("GET /first?q=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    const first = await c.waitFor("seen /first?q=1");
    await waitFor(() => records.length === 1);
    c.socket.write("POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\npayload");
    const both = await c.waitFor("seen /second");
    await waitFor(() => records.length === 2);
    const [r1, r2] = records as [RequestRecord, RequestRecord];
    expect(r1.connectionId).to.equal(r2.connectionId);
    expect(r1.id).to.equal(`${r1.connectionId}.1`);
    expect(r2.id).to.equal(`${r1.connectionId}.2`);
    for (const r of [r1, r2]) {
      expect(r.listener).to.equal("web");
      expect(r.protocol).to.equal("http");
      expect(r.route).to.equal("app");
      expect(r.target).to.equal(`127.0.0.1:${backend.port}`);
      expect(r.clientIp).to.equal("127.0.0.1");
      expect(r.status).to.equal(200);
      expect(r.attempts).to.equal(1);
      expect(r.error).to.equal(undefined);
      expect(r.durationMs).to.be.a("number").and.at.least(0);
      expect(r.upstreamTtfbMs).to.be.a("number").and.at.least(0);
      expect(r.upstreamTtfbMs!).to.be.at.most(r.durationMs);
    }
    expect([r1.method, r1.path, r1.bytesIn]).to.deep.equal(["GET", "/first", 0]);
    expect([r2.method, r2.path, r2.bytesIn]).to.deep.equal(["POST", "/second", 7]);
    // bytes written to the client: each response exactly
    expect(r1.bytesOut).to.equal(Buffer.byteLength(first, "latin1"));
    expect(r2.bytesOut).to.equal(Buffer.byteLength(both, "latin1") - r1.bytesOut);
    c.socket.destroy();
    await c.closed;
  });

  it("records the error code of a 502", async () => {
    const port = await closedPort();
    const env = await startHttpProxy([{ name: "down", targets: [`127.0.0.1:${port}`] }]);
    const records: RequestRecord[] = [];
    env.proxy.proxy.events.on("requestComplete", (r) => records.push(r));
    expect((await request(env.port, { path: "/x" })).status).to.equal(502);
    await waitFor(() => records.length === 1);
    const r = records[0]!;
    expect([r.status, r.error, r.attempts, r.route, r.target]).to.deep.equal([502, "PRX_ERR_UPSTREAM_CONNECT", 1, "down", `127.0.0.1:${port}`]);
    expect(r.upstreamTtfbMs).to.equal(undefined);
  });

  it("records a tap's direct answer with no upstream attempt", async () => {
    const backend = await startBackend((_req, res) => res.end("never"));
    const answer: ProxyPlugin = {
      name: "Answer",
      apply(proxy) {
        proxy.hooks.onRequest.tap("Answer", (req) => {
          if (isHttpRequest(req)) req.respond(403, [], "no");
          return req;
        });
      },
    };
    const env = await startHttpProxy([{ name: "app", targets: [`127.0.0.1:${backend.port}`] }], { plugins: [answer] });
    const records: RequestRecord[] = [];
    env.proxy.proxy.events.on("requestComplete", (r) => records.push(r));
    const res = await request(env.port, { path: "/admin?x" });
    expect(res.status).to.equal(403);
    await waitFor(() => records.length === 1);
    const r = records[0]!;
    expect([r.status, r.attempts, r.path, r.route, r.error]).to.deep.equal([403, 0, "/admin", "app", undefined]);
    expect(backend.requests.length).to.equal(0);
  });

  it("records a request whose client went away with the status sent so far (none: 0)", async () => {
    const held: Array<() => void> = [];
    const backend = await startBackend((_req, res) => held.push(() => res.end("late")));
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const records: RequestRecord[] = [];
    env.proxy.proxy.events.on("requestComplete", (r) => records.push(r));
    const c = await rawSocket(env.port);
    c.socket.write("GET /gone HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => held.length === 1);
    c.socket.destroy();
    await waitFor(() => records.length === 1);
    expect([records[0]!.status, records[0]!.path, records[0]!.attempts]).to.deep.equal([0, "/gone", 1]);
    for (const end of held) end();
  });
});
