import { expect } from "chai";
import type { ProxyOptions } from "@switchyard/core";
import {
  readAll,
  readBytes,
  sleep,
  startEchoServer,
  startTcpServer,
  waitClose,
  waitFor,
  useTcpFixture,
} from "@switchyard/test-utils";

// The byte relay behind TCP listeners (and HTTP upgrades): half-close in the backend's
// direction, idle detection in both directions, and the shared idle sweep.
describe("TCP relay", () => {
  const fx = useTcpFixture({
    afterProxy: (p) => expect(p.proxy.idleSweeper.watched, "connections still watched for idleness").to.equal(0),
  });
  const client = fx.client;
  const proxyTo = (port: number, extra: Partial<ProxyOptions> = {}) => fx.proxyTo([`127.0.0.1:${port}`], extra);

  it("propagates half-close from the backend: the client keeps sending after the backend's FIN", async () => {
    let received: Promise<string> | undefined;
    const backend = await fx.serve(startTcpServer(
      (s) => {
        // greet, close our sending side at once, then keep reading until the client's FIN
        s.end("greeting");
        received = readAll(s).then((b) => b.toString());
      },
      { allowHalfOpen: true },
    ));
    const p = await proxyTo(backend.port);
    const c = await client(p.port(), { allowHalfOpen: true });
    const fromBackend = readAll(c);
    // readAll resolves on the client's "end": the backend's FIN came through the proxy
    expect((await fromBackend).toString()).to.equal("greeting");
    c.write("after-");
    await sleep(30);
    c.end("your-fin");
    await waitFor(() => received !== undefined);
    expect(await received).to.equal("after-your-fin");
    await waitClose(c);
    expect(p.proxy.stats().closeReasons).to.deep.equal({ done: 1 });
  });

  it("counts client-to-backend traffic as activity: a talking client is not idle", async () => {
    // the backend only listens; nothing ever flows back
    const backend = await fx.serve(startTcpServer((s) => s.resume()));
    const p = await proxyTo(backend.port, { timeouts: { idle: 150 } });
    const c = await client(p.port());
    const t0 = Date.now();
    let lastWrite = t0;
    for (let i = 0; i < 6; i++) {
      c.write("ping");
      lastWrite = Date.now();
      await sleep(60);
    }
    await waitClose(c, 3000);
    const closedAt = Date.now();
    // 6 writes 60 ms apart kept it open well past 150 ms; it closed no earlier than 150 ms after the last
    expect(closedAt - t0).to.be.above(400);
    expect(closedAt - lastWrite).to.be.at.least(150);
    await waitFor(() => p.proxy.stats().active === 0);
    expect(p.proxy.stats().closeReasons).to.deep.equal({ "idle-timeout": 1 });
  });

  it("closes the client when the backend resets an established connection, with reason upstream-error", async () => {
    const backend = await fx.serve(
      startTcpServer((s) => {
        s.once("data", () => s.resetAndDestroy());
      }),
    );
    const p = await proxyTo(backend.port);
    const c = await client(p.port());
    const closed = waitClose(c);
    c.on("error", () => {});
    c.write("trigger");
    await closed;
    await waitFor(() => p.proxy.stats().active === 0);
    expect(p.proxy.stats().closeReasons).to.deep.equal({ "upstream-error": 1 });
  });

  it("ends with reason done when the backend closes after answering and the client closes too", async () => {
    const backend = await fx.serve(startTcpServer((s) => s.end("bye")));
    const p = await proxyTo(backend.port);
    const c = await client(p.port());
    expect((await readAll(c)).toString()).to.equal("bye");
    c.end();
    await waitFor(() => p.proxy.stats().active === 0);
    expect(p.proxy.stats().closeReasons).to.deep.equal({ done: 1 });
  });

  it("watches relayed connections for idleness only while they are open", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await proxyTo(backend.port, { timeouts: { idle: 5000 } });
    const a = await client(p.port());
    const b = await client(p.port());
    a.write("a");
    b.write("b");
    await readBytes(a, 1);
    await readBytes(b, 1);
    expect(p.proxy.idleSweeper.watched).to.equal(2);
    a.end();
    await waitFor(() => p.proxy.idleSweeper.watched === 1);
    b.destroy();
    await waitFor(() => p.proxy.idleSweeper.watched === 0);
  });

  it("keeps a slow reader from making the proxy buffer without bound (backpressure both ways)", async function () {
    this.timeout(20_000);
    // the backend writes 32 MB as fast as it can; the client does not read for a while
    const total = 32 * 1024 * 1024;
    const backend = await fx.serve(startTcpServer((s) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    }));
    const p = await proxyTo(backend.port);
    const c = await client(p.port());
    c.pause();
    await sleep(300);
    const conn = [...p.proxy.connections][0]!;
    const buffered = conn.socket.writableLength + (conn.upstream?.readableLength ?? 0);
    expect(buffered, "bytes held by the proxy for a paused client").to.be.below(4 * 1024 * 1024);
    c.resume();
    const got = await readAll(c);
    expect(got.length).to.equal(total);
  });
});
