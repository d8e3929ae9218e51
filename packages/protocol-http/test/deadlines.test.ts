/**
 * Session deadlines share one timer per duration (internal/deadline.ts): each connection's
 * keep-alive and header timeouts still fire at its own time — never early, not much late —
 * however many connections wait in the same list and however they move between lists.
 */
import { expect } from "chai";
import { sleep } from "@switchyard/test-utils";
import { rawSocket, startBackend, startHttpProxy, statusOf, type Backend, type Env } from "./helpers.js";

// Measured by the client: it sees the response (when the proxy armed the deadline) and the close
// each after some delivery latency, which on a loaded 2-core CI machine with 20 clients at once
// differs by tens of milliseconds; the proxy never fires early (internal/deadline.ts), these
// bounds leave room for that latency only.
const SLACK_300 = 250;
const SLACK_200 = 160;

describe("session deadlines (one timer per duration)", () => {
  let backend: Backend;
  let env: Env;
  before(async () => {
    backend = await startBackend((_req, res) => res.end("x"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { keepAliveTimeout: 300, headersTimeout: 200 } });
  });
  after(async () => {
    await env.close();
    await backend.close();
  });

  /** a client that made one request; resolves with the time its response arrived */
  async function idleClient(): Promise<{ s: Awaited<ReturnType<typeof rawSocket>>; idleAt: number; closedAt: Promise<number> }> {
    const s = await rawSocket(env.port);
    s.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await s.waitFor("\r\n\r\nx");
    const idleAt = Date.now();
    return { s, idleAt, closedAt: s.closed.then(() => Date.now()) };
  }

  it("closes each idle keep-alive client after its own keepAliveTimeout, not the first one's", async () => {
    const a = await idleClient();
    await sleep(150);
    const b = await idleClient();
    const c = await idleClient();
    const [ta, tb, tc] = await Promise.all([a.closedAt, b.closedAt, c.closedAt]);
    for (const [t, x] of [[ta, a], [tb, b], [tc, c]] as const) {
      expect(t - x.idleAt).to.be.at.least(SLACK_300);
      expect(t - x.idleAt).to.be.lessThan(1500);
      expect(statusOf(x.s.received())).to.equal(200);
      expect(x.s.received().match(/HTTP\/1\.1/g)!.length).to.equal(1);
    }
    // b went idle 150 ms after a: it must not have been closed together with a
    expect(tb - ta).to.be.at.least(100);
  });

  it("keeps a connection whose next request comes before keepAliveTimeout, and times it out from its last response", async () => {
    const a = await idleClient();
    await sleep(200);
    a.s.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await a.s.waitFor(/\r\n\r\nx[\s\S]*\r\n\r\nx/);
    const second = Date.now();
    const t = await a.closedAt;
    expect(t - second).to.be.at.least(SLACK_300);
    expect(t - second).to.be.lessThan(1500);
    expect(a.s.received().match(/HTTP\/1\.1 200/g)!.length).to.equal(2);
  });

  it("answers 408 to slow heads — a new connection and a keep-alive one that starts a head — after headersTimeout", async () => {
    const fresh = await rawSocket(env.port);
    const kept = await idleClient();
    await sleep(100);
    const t0 = Date.now();
    fresh.socket.write("GET / HTTP/1.1\r\nHost: a\r\n");
    kept.s.socket.write("GET / HTTP/1.1\r\nHost: a\r\n");
    const [f, k] = await Promise.all([fresh.waitFor(/408/), kept.s.waitFor(/408/)]);
    const dt = Date.now() - t0;
    expect(dt).to.be.at.least(SLACK_200);
    expect(dt).to.be.lessThan(1500);
    expect(statusOf(f)).to.equal(408);
    expect(k.match(/HTTP\/1\.1 (\d+)/g)).to.deep.equal(["HTTP/1.1 200", "HTTP/1.1 408"]);
    fresh.socket.destroy();
    kept.s.socket.destroy();
  });

  it("times out many idle connections in one list, each closed", async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => idleClient()));
    const times = await Promise.all(clients.map((c) => c.closedAt));
    times.forEach((t, i) => expect(t - clients[i]!.idleAt).to.be.at.least(SLACK_300));
  });
});
