import type { Socket } from "node:net";
import type { LookupAddress } from "node:dns";
import { expect } from "chai";
import { Connection, IpMatcher, PluginError, ProxyError, UpstreamConnectError, UpstreamTimeoutError, dial, parseTarget, type Target } from "@switchyard/core";
import { createBalancer, reportConnect } from "../dist/internal/balancer.js";
import {
  closedPort,
  readAll,
  readBytes,
  sleep,
  startBlackhole,
  startEchoServer,
  waitClose,
  waitFor,
  useTcpFixture,
  type Blackhole,
  gatedResolve,
} from "@switchyard/test-utils";

// The connect phase (its own deadline after the handshake's, plugin failures in it, the DNS
// lookup of guarded targets), the idle sweep's never-early guarantee, and least-connections
// with a failing or slow target.

describe("connect, idle and balancing", () => {
  // one unreachable backend for every test (starting one takes a while)
  let blackhole: Blackhole;
  before(async () => {
    blackhole = await startBlackhole();
  });
  after(async () => {
    await blackhole.close();
  });

  describe("connect phase", () => {
    const fx = useTcpFixture();
    const { proxyTo, client } = fx;

    it("is bounded by the connect timeout, not by what is left of the handshake deadline", async () => {
      const p = await proxyTo([`127.0.0.1:${blackhole.port}`], { timeouts: { handshake: 150, connect: 500 } });
      const closes: Array<{ reason: string; durationMs: number; code: string | undefined }> = [];
      p.proxy.events.on("connectionClose", (_c, info) =>
        closes.push({ reason: info.reason, durationMs: info.durationMs, code: (info.error as ProxyError | undefined)?.code }),
      );
      const upstreamErrors: ProxyError[] = [];
      p.proxy.events.on("upstreamError", (e) => upstreamErrors.push(e.error));
      const c = await client(p.port());
      const t0 = Date.now();
      await waitClose(c, 2000);
      expect(Date.now() - t0).to.be.at.least(400);
      await waitFor(() => closes.length === 1);
      expect(closes[0]).to.include({ reason: "connect-failed", code: "PRX_ERR_UPSTREAM_TIMEOUT" });
      expect(closes[0]!.durationMs).to.be.at.least(450);
      expect(upstreamErrors).to.have.length(1);
      expect(upstreamErrors[0]).to.be.instanceOf(UpstreamTimeoutError);
    });

    it("still ends at the handshake deadline while routing has not answered", async () => {
      const backend = await fx.serve(startEchoServer());
      const gated = gatedResolve();
      const p = await proxyTo([`127.0.0.1:${backend.port}`], {
        timeouts: { handshake: 150, connect: 2000 },
        plugins: [
          gated.plugin,
        ],
      });
      const reasons: string[] = [];
      p.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
      const c = await client(p.port());
      const t0 = Date.now();
      await waitClose(c, 2000);
      expect(Date.now() - t0).to.be.below(1000);
      expect(reasons).to.deep.equal(["handshake-timeout"]);
      gated.release();
    });

    it("a throwing onUpstreamResponse tap closes with plugin-error and emits pluginError", async () => {
      const dead = await closedPort();
      const p = await proxyTo([`127.0.0.1:${dead}`], {
        plugins: [
          {
            name: "BadRetry",
            apply(proxy) {
              proxy.hooks.onUpstreamResponse.tap("BadRetry", () => {
                throw new Error("boom");
              });
            },
          },
        ],
      });
      const pluginErrors: PluginError[] = [];
      p.proxy.events.on("pluginError", (e) => pluginErrors.push(e));
      const upstreamErrors: ProxyError[] = [];
      p.proxy.events.on("upstreamError", (e) => upstreamErrors.push(e.error));
      const closes: Array<{ reason: string; code: string | undefined }> = [];
      p.proxy.events.on("connectionClose", (_c, info) => closes.push({ reason: info.reason, code: (info.error as ProxyError | undefined)?.code }));
      const c = await client(p.port());
      await waitClose(c, 2000);
      await waitFor(() => closes.length === 1);
      expect(closes).to.deep.equal([{ reason: "plugin-error", code: "PRX_ERR_PLUGIN" }]);
      expect(pluginErrors).to.have.length(1);
      expect(pluginErrors[0]).to.include({ hook: "onUpstreamResponse", plugin: "BadRetry" });
      expect((pluginErrors[0]!.cause as Error).message).to.equal("boom");
      // the connect failure itself was still reported
      expect(upstreamErrors).to.have.length(1);
      expect(upstreamErrors[0]!.code).to.equal("PRX_ERR_UPSTREAM_CONNECT");
    });
  });

  describe("dialer: the name lookup of a guarded target", () => {
    // for the resource check after each test: no timer or socket may outlive a dial
    useTcpFixture();
    const loopback = { allow: new IpMatcher(["127.0.0.0/8"]) };
    const never = (): Promise<LookupAddress[]> => new Promise<LookupAddress[]>(() => {});
    const after = (ms: number, address: string) => (): Promise<LookupAddress[]> =>
      new Promise((r) => setTimeout(() => r([{ address, family: 4 }]), ms));

    it("uses the injected lookup and connects to the address it checked", async () => {
      const echo = await startEchoServer();
      try {
        const asked: string[] = [];
        const s = await dial(
          { host: "backend.test", port: echo.port },
          {
            timeoutMs: 1000,
            guard: loopback,
            lookup: async (host) => {
              asked.push(host);
              return [{ address: "127.0.0.1", family: 4 }];
            },
          },
        );
        s.end("via lookup");
        expect((await readAll(s)).toString()).to.equal("via lookup");
        expect(asked).to.deep.equal(["backend.test"]);
      } finally {
        await echo.close();
      }
    });

    it("is bounded by the connect timeout", async function () {
      this.timeout(2000);
      const t0 = Date.now();
      const err = await dial({ host: "slow.test", port: 80 }, { timeoutMs: 150, guard: {}, lookup: never }).catch((e: unknown) => e);
      expect(Date.now() - t0).to.be.within(100, 600);
      expect(err).to.be.instanceOf(UpstreamTimeoutError);
      expect((err as UpstreamTimeoutError).code).to.equal("PRX_ERR_UPSTREAM_TIMEOUT");
    });

    it("is ended by the abort signal", async function () {
      this.timeout(2000);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      const t0 = Date.now();
      const err = await dial({ host: "slow.test", port: 80 }, { timeoutMs: 0, guard: {}, signal: ac.signal, lookup: never }).catch(
        (e: unknown) => e,
      );
      expect(Date.now() - t0).to.be.below(500);
      expect(err).to.be.instanceOf(UpstreamConnectError);
      expect((err as Error).message).to.match(/aborted/);
    });

    it("shares one deadline with the connect that follows it", async () => {
      const t0 = Date.now();
      const err = await dial(
        { host: "slow.test", port: blackhole.port },
        { timeoutMs: 300, guard: loopback, lookup: after(250, "127.0.0.1") },
      ).catch((e: unknown) => e);
      // 250 ms of lookup leave 50 ms of the 300 for the connect (not another 300)
      expect(Date.now() - t0).to.be.within(250, 450);
      expect(err).to.be.instanceOf(UpstreamTimeoutError);
    });
  });

  describe("idle sweep", () => {
    const fx = useTcpFixture();

    // Records when the relay really saw each connection's last chunk (the sweep only sees a coarse
    // stamp of it), and when each connection closed.
    function observe(proxy: { connections: ReadonlySet<Connection> }) {
      const lastChunk = new Map<string, number>();
      const tracked = new Set<Connection>();
      return {
        lastChunk,
        track(c: Socket): Connection {
          const conn = [...proxy.connections].find((x) => x.info.clientPort === c.localPort);
          if (!conn) throw new Error("connection not found");
          if (!tracked.has(conn)) {
            tracked.add(conn);
            conn.touch = function (this: Connection) {
              lastChunk.set(this.id, performance.now());
              Connection.prototype.touch.call(this);
            };
          }
          return conn;
        },
      };
    }

    it("never fires early after a shorter timeout shrank the sweep interval, nor holds the short one back", async () => {
      const backend = await fx.serve(startEchoServer());
      const p = await fx.start({
        listeners: [
          { name: "long", protocol: "tcp", port: 0, timeouts: { idle: 800 } }, // sweeps every 100 ms
          { name: "short", protocol: "tcp", port: 0, timeouts: { idle: 80 } }, // sweeps every 10 ms
        ],
        routes: [{ name: "r", targets: [`127.0.0.1:${backend.port}`] }],
      });
      const closedAt = new Map<string, number>();
      p.proxy.events.on("connectionClose", (info) => closedAt.set(info.id, performance.now()));
      const o = observe(p.proxy);
      const longs: Array<{ c: Socket; conn: Connection }> = [];
      for (let i = 0; i < 5; i++) {
        const c = await fx.client(p.port("long"));
        c.write("a");
        await readBytes(c, 1);
        longs.push({ c, conn: o.track(c) });
      }
      // last chunks spread over more than one 100 ms interval: one of them is stamped just before a
      // refresh, so its stamp is ~80-100 ms older than the chunk
      for (const { c } of longs) {
        c.write("b");
        await readBytes(c, 1);
        await sleep(20);
      }
      // a 80 ms timeout shrinks the interval to 10 ms
      const s = await fx.client(p.port("short"));
      const short = o.track(s);
      await sleep(25);
      s.write("z");
      await readBytes(s, 1);
      await waitFor(() => closedAt.size === 6, 3000, "every connection to close on its idle timeout");
      expect(p.proxy.stats().closeReasons).to.deep.equal({ "idle-timeout": 6 });
      // 2 ms for timer granularity: closing early, the stale stamp costs tens of ms
      const idleFor = longs.map(({ conn }) => closedAt.get(conn.id)! - o.lastChunk.get(conn.id)!);
      const shown = idleFor.map((ms) => ms.toFixed(1)).join(", ");
      expect(Math.min(...idleFor), `idle for ${shown} ms (idle 800)`).to.be.at.least(800 - 2);
      const shortIdle = closedAt.get(short.id)! - o.lastChunk.get(short.id)!;
      expect(shortIdle, "short connection's idleness before close").to.be.at.least(80 - 2);
      // its chunk came after the shrink: its slack is the 10 ms interval, not the replaced 100 ms one
      expect(shortIdle, "short connection's idleness before close").to.be.below(170);
      expect(p.proxy.idleSweeper.watched).to.equal(0);
    });
  });

  describe("least-connections", () => {
    const fx = useTcpFixture();

    /** true when the connection echoed (reached the echo target) */
    async function echoes(port: number, keep: Socket[] | undefined): Promise<boolean> {
      const c = await fx.client(port);
      c.write("x");
      const ok = await readBytes(c, 1, 1000).then(
        () => true,
        () => false,
      );
      if (ok && keep) keep.push(c);
      else c.destroy();
      return ok;
    }

    it("passes over a target that refused while a healthy one is busy", async () => {
      const echo = await fx.serve(startEchoServer());
      const dead = await closedPort();
      const p = await fx.start({
        listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
        routes: [{ name: "r", lb: "least-connections", targets: [`127.0.0.1:${dead}`, `127.0.0.1:${echo.port}`] }],
      });
      // one connection held open on the echo target (the very first pick may be the refusing one)
      const held: Socket[] = [];
      for (let i = 0; i < 3 && held.length === 0; i++) await echoes(p.port(), held);
      expect(held).to.have.length(1);
      const failedBefore = p.proxy.stats().closeReasons["connect-failed"] ?? 0;
      expect(failedBefore).to.be.at.most(1);
      const results: boolean[] = [];
      for (let i = 0; i < 6; i++) results.push(await echoes(p.port(), undefined));
      expect(results).to.deep.equal([true, true, true, true, true, true]);
      expect(echo.accepted).to.equal(7);
      expect(p.proxy.stats().closeReasons["connect-failed"] ?? 0).to.equal(failedBefore);
    });

    it("counts a connection from the moment its target is picked, not once connected", async () => {
      const echo = await fx.serve(startEchoServer());
      const p = await fx.start({
        listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
        routes: [{ name: "r", lb: "least-connections", targets: [`127.0.0.1:${echo.port}`, `127.0.0.1:${blackhole.port}`] }],
        timeouts: { connect: 400 },
      });
      const held: Socket[] = [];
      expect(await echoes(p.port(), held)).to.equal(true); // echo: 1, blackhole: 0
      // this one goes to the blackhole (fewer connections) and stays connecting
      const slow = await fx.client(p.port());
      await waitFor(() => [...p.proxy.connections].some((c) => c.state === "connecting" && c.target?.port === blackhole.port));
      // echo 1, blackhole 1 (dialing): a tie, and the blackhole had the last turn
      const t0 = Date.now();
      expect(await echoes(p.port(), held)).to.equal(true);
      expect(Date.now() - t0).to.be.below(300);
      expect(echo.accepted).to.equal(2);
      await waitClose(slow, 2000);
      expect(p.proxy.stats().closeReasons).to.deep.equal({ "connect-failed": 1 });
    });
  });

  describe("least-connections balancer: connect reports", () => {
    const targets = (n: number): Target[] => Array.from({ length: n }, (_, i) => parseTarget(`t${i}:80`));
    const names = (ts: Array<Target | undefined>) => ts.map((t) => t?.host);

    it("passes over a target whose connect failed until the down period ends", () => {
      const ts = targets(3);
      let now = 1000;
      const lb = createBalancer(ts, "least-connections", Math.random, { downMs: 500, now: () => now });
      reportConnect(lb, ts[0]!, false);
      expect(names(Array.from({ length: 4 }, () => lb.pick()))).to.deep.equal(["t1", "t2", "t1", "t2"]);
      // even with more connections, an up target wins over a down one
      lb.acquire(ts[1]!);
      lb.acquire(ts[2]!);
      expect(lb.pick()?.host).to.equal("t1");
      now += 500;
      expect(lb.pick()?.host).to.equal("t0");
    });

    it("lifts the mark at once after a successful connect", () => {
      const ts = targets(2);
      const lb = createBalancer(ts, "least-connections", Math.random, { downMs: 10_000, now: () => 0 });
      reportConnect(lb, ts[0]!, false);
      expect(names([lb.pick(), lb.pick()])).to.deep.equal(["t1", "t1"]);
      reportConnect(lb, ts[0]!, true);
      expect(names([lb.pick(), lb.pick()])).to.deep.equal(["t0", "t1"]);
    });

    it("still picks when every target left is down: the least busy of them", () => {
      const ts = targets(3);
      const lb = createBalancer(ts, "least-connections", Math.random, { downMs: 10_000, now: () => 0 });
      for (const t of ts) reportConnect(lb, t, false);
      lb.acquire(ts[0]!);
      lb.acquire(ts[1]!);
      expect(lb.pick()?.host).to.equal("t2");
      expect(lb.pick(new Set([ts[2]!]))?.host).to.equal("t0");
      expect(lb.pick(new Set(ts))).to.equal(undefined);
    });

    it("round-robin and random ignore connect reports", () => {
      const ts = targets(2);
      const rr = createBalancer(ts, "round-robin");
      reportConnect(rr, ts[0]!, false);
      expect(names([rr.pick(), rr.pick()])).to.deep.equal(["t0", "t1"]);
      const rnd = createBalancer(ts, "random", () => 0);
      reportConnect(rnd, ts[0]!, false);
      expect(rnd.pick()?.host).to.equal("t0");
    });
  });
});
