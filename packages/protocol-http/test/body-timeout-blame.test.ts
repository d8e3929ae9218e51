/**
 * Whose fault is a request body that stops moving: an upstream that stops reading (the proxy
 * holds client bytes it cannot write, and has paused the client) → 504; a client that stops
 * sending mid-body → 408. Either way the upstream socket is closed, never pooled again.
 */
import { expect } from "chai";
import type { Socket } from "node:net";
import { expectNoActiveConnections, waitFor, type TestServer } from "@switchyard/test-utils";
import type { ProxyPlugin } from "./hook-helpers.js";
import { rawSocket, startHttpProxy, statusOf, tcpServer, type Env } from "./helpers.js";

const BODY = 48 * 1024 * 1024;

/** First connection: reads the request head, then stops reading. Later ones answer "ok". */
function stallingUpstream(closed: Socket[]): Promise<TestServer> {
  let n = 0;
  return tcpServer((s) => {
    const first = n++ === 0;
    s.on("close", () => closed.push(s));
    let head = "";
    s.on("data", (c: Buffer) => {
      if (first) {
        if (head.includes("\r\n\r\n")) return; // resumed by the test: drop the rest
        head += c.toString("latin1");
        if (head.includes("\r\n\r\n")) s.pause();
      } else if (c.includes("\r\n\r\n")) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
  });
}

const passThrough: ProxyPlugin = {
  name: "pass",
  apply(proxy) {
    proxy.hooks.onRequest.tap("pass", (req) => req);
  },
};

async function upload(env: Env, head: string, body: Buffer): Promise<{ text: string; ms: number }> {
  const c = await rawSocket(env.port);
  const t0 = Date.now();
  c.socket.write(head);
  c.socket.write(body);
  const text = await c.waitFor(/\r\n\r\n[^]*request id: \S+\n/, 5000);
  const ms = Date.now() - t0;
  c.socket.destroy();
  return { text, ms };
}

describe("request body timeout: upstream stall vs client stall", () => {
  for (const tapped of [false, true]) {
    it(`answers 504 (not 408) when the upstream stops reading a large upload${tapped ? " (onRequest tapped: body streamed)" : ""}, and never reuses that socket`, async () => {
      const closed: Socket[] = [];
      const upstream = await stallingUpstream(closed);
      const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`], options: { bodyTimeout: 200 } }], { plugins: tapped ? [passThrough] : [] });
      const errors: string[] = [];
      env.proxy.proxy.events.on("upstreamError", (e: { error: Error }) => errors.push(e.error.message));
      const { text, ms } = await upload(env, `POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: ${BODY}\r\n\r\n`, Buffer.alloc(BODY, 120));
      expect(statusOf(text), text.slice(0, 300)).to.equal(504);
      const id = /X-Request-Id: (\S+)/.exec(text)![1]!;
      expect(text).to.include("Content-Type: text/plain").and.include(`request id: ${id}`).and.include("Connection: close");
      expect(ms).to.be.lessThan(3000);
      expect(errors).to.deep.equal(["upstream stopped reading the request body"]);
      await expectNoActiveConnections(env.proxy.proxy);
      // the stalled socket was closed, not pooled: the next request dials a new connection
      expect(env.protocol.poolStats(env.proxy.proxy)[0]).to.deep.include({ open: 0, idle: 0 });
      upstream.sockets[0]!.resume(); // reads what was still buffered, then the proxy's FIN
      await waitFor(() => closed.includes(upstream.sockets[0]!));
      const c = await rawSocket(env.port);
      c.socket.write("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
      expect(await c.waitFor(/ok$/)).to.match(/^HTTP\/1\.1 200 /);
      expect(upstream.accepted).to.equal(2);
      c.socket.destroy();
    });
  }

  it("still answers 408 to a client that sends half its Content-Length and goes quiet", async () => {
    const closed: Socket[] = [];
    const upstream = await tcpServer((s) => {
      s.on("close", () => closed.push(s));
      s.resume();
    });
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`], options: { bodyTimeout: 200 } }]);
    const { text } = await upload(env, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n", Buffer.alloc(100_000, 120));
    expect(statusOf(text)).to.equal(408);
    expect(text).to.match(/X-Request-Id: \S+/).and.include("Connection: close");
    await expectNoActiveConnections(env.proxy.proxy);
    expect(env.protocol.poolStats(env.proxy.proxy)[0]).to.deep.include({ open: 0, idle: 0 });
    await waitFor(() => closed.length === 1);
  });
});
