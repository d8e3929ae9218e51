import type { Socket } from "node:net";
import { once } from "node:events";
import { createHash, randomBytes } from "node:crypto";
import { expect } from "chai";
import {
  closedPort,
  connectTo,
  expectNoActiveConnections,
  readAll,
  readBytes,
  sleep,
  startEchoServer,
  startBlackhole,
  startTcpServer,
  waitClose,
  waitFor,
  useTcpFixture,
  gatedResolve,
} from "@switchyard/test-utils";

describe("TCP forwarding", () => {
  const fx = useTcpFixture();
  const { proxyTo, client } = fx;

  it("echoes bytes through the proxy and reports counts on close", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await proxyTo([`127.0.0.1:${backend.port}`]);
    const closes: Array<{ reason: string; bytesIn: number; bytesOut: number; route: string | undefined }> = [];
    p.proxy.events.on("connectionClose", (_c, info) => closes.push(info));
    const c = await client(p.port());
    c.write("hello switchyard");
    expect((await readBytes(c, 16)).toString()).to.equal("hello switchyard");
    c.end();
    await waitClose(c);
    await waitFor(() => closes.length === 1);
    expect(closes[0]).to.include({ reason: "done", bytesIn: 16, bytesOut: 16, route: "r" });
    expect(p.proxy.stats().routes.r).to.deep.equal({ active: 0, total: 1 });
  });

  it("moves 100 MB byte-identical with bounded proxy memory", async function () {
    this.timeout(60_000);
    const backend = await fx.serve(startEchoServer());
    const p = await proxyTo([`127.0.0.1:${backend.port}`]);
    const c = await client(p.port(), { allowHalfOpen: true });
    const total = 100 * 1024 * 1024;
    const chunk = randomBytes(64 * 1024);
    const sent = createHash("sha256");
    const got = createHash("sha256");
    let received = 0;
    let peakRss = 0;
    let peakBuffered = 0;
    const rssBefore = process.memoryUsage().rss;
    // what the proxy itself holds: bytes queued in, or read but not yet consumed from, its sockets
    const buffered = () => {
      let n = 0;
      for (const conn of p.proxy.connections) {
        for (const s of [conn.socket, conn.upstream]) if (s) n += s.writableLength + s.readableLength;
      }
      return n;
    };
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      peakBuffered = Math.max(peakBuffered, buffered());
    }, 5);
    const done = new Promise<void>((resolve) => {
      c.on("data", (d: Buffer) => {
        got.update(d);
        received += d.length;
        if (received === total) resolve();
      });
    });
    for (let off = 0; off < total; off += chunk.length) {
      sent.update(chunk);
      if (!c.write(chunk)) await once(c, "drain");
    }
    c.end();
    await done;
    clearInterval(sampler);
    expect(got.digest("hex")).to.equal(sent.digest("hex"));
    // proxy, client and echo share this process: growth must stay far below the 100 MB moved
    // backpressure holds the proxy's buffers to a few socket high-water marks...
    expect(peakBuffered).to.be.below(4 * 1024 * 1024);
    // ...and the process (proxy, client and echo together) never holds the 100 MB it moved
    expect(peakRss - rssBefore).to.be.below(100 * 1024 * 1024);
    await waitClose(c, 10_000);
  });

  it("propagates half-close: the upstream keeps sending after the client's FIN", async () => {
    const backend = await fx.serve(startTcpServer(
      (s) => {
        const chunks: Buffer[] = [];
        s.on("data", (d: Buffer) => chunks.push(d));
        s.on("end", async () => {
          // answer only after the client finished sending, in two pieces
          s.write("got:" + Buffer.concat(chunks).toString());
          await sleep(50);
          s.end(":bye");
        });
      },
      { allowHalfOpen: true },
    ));
    const p = await proxyTo([`127.0.0.1:${backend.port}`]);
    const c = await client(p.port(), { allowHalfOpen: true });
    const all = readAll(c);
    c.end("request");
    expect((await all).toString()).to.equal("got:request:bye");
  });

  it("closes the client promptly when the backend refuses", async () => {
    const port = await closedPort();
    const p = await proxyTo([`127.0.0.1:${port}`]);
    const reasons: string[] = [];
    p.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    const t0 = Date.now();
    const c = await client(p.port());
    await waitClose(c, 2000);
    expect(Date.now() - t0).to.be.below(1000);
    await waitFor(() => reasons.length === 1);
    expect(reasons).to.deep.equal(["connect-failed"]);
  });

  it("gives up on an unreachable backend after the connect timeout", async () => {
    const blackhole = await startBlackhole();
    const p = await proxyTo([`127.0.0.1:${blackhole.port}`], { timeouts: { connect: 200 } });
    const reasons: string[] = [];
    p.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    const c = await client(p.port());
    const t0 = Date.now();
    await waitClose(c, 3000);
    expect(Date.now() - t0).to.be.within(150, 2000);
    expect(reasons).to.deep.equal(["connect-failed"]);
    await blackhole.close();
  });

  it("releases everything when the client aborts during connect", async () => {
    const blackhole = await startBlackhole();
    const p = await proxyTo([`127.0.0.1:${blackhole.port}`], { timeouts: { connect: 5000 } });
    const c = await client(p.port());
    await waitFor(() => p.proxy.stats().active === 1);
    await sleep(30);
    c.resetAndDestroy();
    await expectNoActiveConnections(p.proxy, 1000);
    expect(p.proxy.stats().closeReasons).to.deep.equal({ "client-error": 1 });
    await blackhole.close();
  });

  it("forwards bytes and the FIN a client sent while the upstream was connecting", async () => {
    const gated = gatedResolve();
    const backend = await fx.serve(startTcpServer(
      (s) => {
        const got: Buffer[] = [];
        s.on("data", (d: Buffer) => got.push(d));
        s.on("end", () => s.end("seen:" + Buffer.concat(got).toString()));
      },
      { allowHalfOpen: true },
    ));
    const p = await proxyTo([`127.0.0.1:${backend.port}`], {
      plugins: [
        gated.plugin,
      ],
    });
    const c = await client(p.port(), { allowHalfOpen: true });
    const all = readAll(c);
    c.end("early bytes");
    await sleep(50);
    gated.release();
    expect((await all).toString()).to.equal("seen:early bytes");
  });

  it("releases everything when the client aborts while established", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await proxyTo([`127.0.0.1:${backend.port}`]);
    const c = await client(p.port());
    c.write("x");
    await readBytes(c, 1);
    c.resetAndDestroy();
    await expectNoActiveConnections(p.proxy, 1000);
    await waitFor(() => backend.sockets.every((s) => s.destroyed));
  });

  // A reset is seen while onAccept runs (the accepted socket is read from the start) and releases
  // the connection at once; a FIN is a legal half-close, so that client waits for the deadline.
  for (const abort of [
    { how: "resets", act: (c: Socket) => c.resetAndDestroy(), reason: "client-error", within: 200 },
    { how: "half-closes (FIN)", act: (c: Socket) => c.destroy(), reason: "handshake-timeout", within: 900 },
  ]) {
    it(`releases a client that ${abort.how} during a slow onAccept (${abort.reason})`, async () => {
      const backend = await fx.serve(startEchoServer());
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const p = await proxyTo([`127.0.0.1:${backend.port}`], {
        timeouts: { handshake: 400 },
        plugins: [
          {
            name: "SlowGate",
            apply(proxy) {
              proxy.hooks.onAccept.tapPromise("SlowGate", async () => {
                await gate;
                return undefined;
              });
            },
          },
        ],
      });
      const c = await client(p.port());
      c.on("error", () => {});
      await waitFor(() => p.proxy.stats().active === 1);
      const t0 = Date.now();
      abort.act(c);
      await expectNoActiveConnections(p.proxy, 2000);
      expect(Date.now() - t0).to.be.below(abort.within);
      expect(p.proxy.stats().closeReasons).to.deep.equal({ [abort.reason]: 1 });
      release();
      await sleep(20);
      expect(backend.accepted).to.equal(0);
    });
  }

  it("closes idle connections (traffic in either direction resets the timer)", async () => {
    const backend = await fx.serve(startTcpServer((s) => {
      // the upstream talks every 60 ms for a while, then goes quiet
      let n = 0;
      const t = setInterval(() => {
        if (++n > 5 || s.destroyed) return clearInterval(t);
        s.write("tick");
      }, 60);
      s.on("close", () => clearInterval(t));
    }));
    const p = await proxyTo([`127.0.0.1:${backend.port}`], { timeouts: { idle: 150 } });
    const reasons: string[] = [];
    p.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    const c = await client(p.port());
    const t0 = Date.now();
    const data = readAll(c);
    await waitClose(c, 3000);
    // 5 ticks at 60 ms keep it alive past 150 ms; it closes ~150 ms after the last tick
    expect(Date.now() - t0).to.be.above(300);
    expect((await data).toString()).to.equal("ticktickticktick" + "tick");
    await waitFor(() => reasons.length === 1);
    expect(reasons).to.deep.equal(["idle-timeout"]);
  });

  it("closes a client that never gets routed within the handshake deadline", async () => {
    const backend = await fx.serve(startEchoServer());
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const p = await proxyTo([`127.0.0.1:${backend.port}`], {
      timeouts: { handshake: 100 },
      plugins: [
        {
          name: "Stuck",
          apply(proxy) {
            proxy.hooks.onAccept.tapPromise("Stuck", async () => {
              await gate;
              return undefined;
            });
          },
        },
      ],
    });
    const reasons: string[] = [];
    p.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    const c = await client(p.port());
    await waitClose(c, 2000);
    expect(reasons).to.deep.equal(["handshake-timeout"]);
    release();
  });

  it("graceful close lets established connections finish, then destroys stragglers", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await proxyTo([`127.0.0.1:${backend.port}`]);
    const c1 = await client(p.port(), { allowHalfOpen: true });
    const c2 = await client(p.port());
    c1.write("a");
    c2.write("b");
    await readBytes(c1, 1);
    await readBytes(c2, 1);
    const port = p.port();
    const closing = p.proxy.close({ timeout: 300 });
    // new connections are refused once closing started
    await sleep(20);
    const refused = await connectTo(port).then(
      (s) => (s.destroy(), false),
      () => true,
    );
    expect(refused).to.equal(true);
    // c1 finishes its exchange within the deadline
    const rest = readAll(c1);
    c1.end("zz");
    expect((await rest).toString()).to.equal("zz");
    // c2 is idle and gets destroyed at the deadline
    const t0 = Date.now();
    await closing;
    await waitClose(c2, 1000);
    expect(Date.now() - t0).to.be.below(600);
    expect(p.proxy.stats().closeReasons).to.include({ done: 1, shutdown: 1 });
    fx.started = undefined;
  });

  it("routes by listener and client CIDR", async () => {
    const backend = await fx.serve(startTcpServer((s) => s.end("A")));
    const other = await startTcpServer((s) => s.end("B"));
    const started = await fx.start({
      listeners: [
        { name: "one", protocol: "tcp", port: 0 },
        { name: "two", protocol: "tcp", port: 0 },
      ],
      routes: [
        { name: "loop", listener: "one", match: { clientIp: "127.0.0.0/8" }, targets: [`127.0.0.1:${backend.port}`] },
        { name: "two", listener: "two", targets: [`127.0.0.1:${other.port}`] },
      ],
    });
    const a = readAll(await client(started.port("one")));
    const b = readAll(await client(started.port("two")));
    expect((await a).toString()).to.equal("A");
    expect((await b).toString()).to.equal("B");
    await other.close();
  });

  it("closes the connection when no route matches", async () => {
    const started = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
      routes: [{ name: "elsewhere", match: { clientIp: "10.0.0.0/8" }, targets: ["127.0.0.1:1"] }],
    });
    const reasons: string[] = [];
    started.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    const c = await client(started.port());
    await waitClose(c);
    await waitFor(() => reasons.length === 1);
    expect(reasons).to.deep.equal(["no-route"]);
  });

  it("keeps established connections on their backend when routes are replaced", async () => {
    const backend = await fx.serve(startEchoServer());
    const other = await startTcpServer((s) => s.end("new"));
    const p = await proxyTo([`127.0.0.1:${backend.port}`]);
    const c1 = await client(p.port());
    c1.write("1");
    await readBytes(c1, 1);
    p.proxy.setRoutes([{ name: "r2", listener: "tcp", targets: [`127.0.0.1:${other.port}`] }]);
    c1.write("2");
    expect((await readBytes(c1, 1)).toString()).to.equal("2");
    const c2 = readAll(await client(p.port()));
    expect((await c2).toString()).to.equal("new");
    await other.close();
  });
});

