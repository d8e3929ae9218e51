import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { ResolveError, Stage } from "@switchyard/core";
import {
  connectTo,
  expectNoActiveConnections,
  expectNoLeakedResources,
  readAll,
  readBytes,
  resourceBaseline,
  startEchoServer,
  startProxy,
  startTcpServer,
  waitClose,
  waitFor,
} from "@switchyard/test-utils";

describe("connection lifecycle", () => {
  let baseline: Map<string, number>;
  beforeEach(() => {
    baseline = resourceBaseline();
  });
  afterEach(async () => {
    await expectNoLeakedResources(baseline);
  });

  it("a proxy chain (proxy → proxy → backend) returns to zero when the backend closes", async () => {
    const backend = await startTcpServer((s) => s.once("data", () => s.end("bye")));
    const inner = await startProxy({
      listeners: [{ name: "inner", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
    });
    const outer = await startProxy({
      listeners: [{ name: "outer", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${inner.port()}`] }],
    });
    for (let i = 0; i < 5; i++) {
      const c = await connectTo(outer.port());
      const all = readAll(c);
      c.write("hi");
      expect((await all).toString()).to.equal("bye");
      await waitClose(c);
    }
    await expectNoActiveConnections(outer.proxy);
    await expectNoActiveConnections(inner.proxy);
    expect(outer.proxy.stats().total).to.equal(5);
    await outer.proxy.close();
    await inner.proxy.close();
    await backend.close();
  });

  it("ends a connection at its maximum lifetime even while traffic flows", async () => {
    const backend = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, timeouts: { lifetime: 200, idle: 1000 } }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
    });
    const c = await connectTo(port());
    const timer = setInterval(() => c.writable && c.write("."), 20);
    const t0 = Date.now();
    await waitClose(c, 2000);
    clearInterval(timer);
    expect(Date.now() - t0).to.be.within(150, 600);
    await expectNoActiveConnections(proxy);
    expect(proxy.stats().closeReasons).to.deep.equal({ "lifetime-timeout": 1 });
    await proxy.close();
    await backend.close();
  });

  it("reports the client address of a connection closed before anything asked for it", async () => {
    const { proxy, port } = await startProxy({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0, maxConnections: 0 }],
      routes: [{ targets: ["127.0.0.1:1"] }],
    });
    const seen: Array<{ ip: string; port: number; reason: string }> = [];
    proxy.events.on("connectionClose", (c, info) => seen.push({ ip: c.clientIp, port: c.clientPort, reason: info.reason }));
    const c = await connectTo(port());
    const localPort = c.localPort;
    await waitClose(c);
    await waitFor(() => seen.length === 1);
    expect(seen[0]).to.deep.equal({ ip: "127.0.0.1", port: localPort, reason: "rejected" });
    await proxy.close();
  });

  for (const routed of ["by client address", "for everyone"]) {
    it(`closes a client that reset before it was accepted as client-error, without connecting upstream (route ${routed})`, async () => {
      const backend = await startEchoServer();
      const { proxy, port } = await startProxy({
        listeners: [{ name: "t", protocol: "tcp", port: 0 }],
        routes: [{ ...(routed === "for everyone" ? {} : { match: { clientIp: "127.0.0.0/8" } }), targets: [`127.0.0.1:${backend.port}`] }],
      });
      try {
        const reasons: string[] = [];
        proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
        // another process connects and resets while this one is blocked (execFileSync), so the
        // proxy accepts a connection that is already gone: its peer address can no longer be read
        const client = `const s = require("node:net").connect(${port()}, "127.0.0.1", () => s.resetAndDestroy()); s.on("error", () => {});`;
        execFileSync(process.execPath, ["-e", client]);
        await waitFor(() => reasons.length === 1);
        await expectNoActiveConnections(proxy);
        expect(reasons).to.deep.equal(["client-error"]);
        expect(backend.accepted).to.equal(0);
      } finally {
        await proxy.close();
        await backend.close();
      }
    });
  }

  it("refuses connections over a listener's maxConnections and counts them down again", async () => {
    const backend = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0, maxConnections: 2 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
    });
    const a = await connectTo(port());
    const b = await connectTo(port());
    a.write("a");
    b.write("b");
    await readBytes(a, 1);
    await readBytes(b, 1);
    const c = await connectTo(port());
    await waitClose(c);
    expect(proxy.stats().closeReasons).to.deep.equal({ rejected: 1 });
    a.destroy();
    await waitFor(() => proxy.stats().active === 1);
    const d = await connectTo(port());
    d.write("d");
    expect((await readBytes(d, 1)).toString()).to.equal("d");
    b.destroy();
    d.destroy();
    await expectNoActiveConnections(proxy);
    await proxy.close();
    await backend.close();
  });

  it("keeps one route per fresh resolver answer while it stays the same, and a new one when its options change", async () => {
    const a = await startEchoServer();
    const b = await startEchoServer();
    let options: Record<string, unknown> = { v: 1 };
    const routes: string[] = [];
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      // a new answer object every time, as a resolver without a cache gives
      resolver: { resolve: () => ({ targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], lb: "round-robin", options }) },
      ssrf: { disabled: true },
      plugins: [
        {
          name: "Seen",
          routeOptions: ["v"],
          apply(p) {
            p.hooks.onClose.tap("Seen", (conn) => void routes.push(`${conn.route?.options.v}`));
          },
        },
      ],
    });
    const once = async () => {
      const c = await connectTo(port());
      c.write("x");
      await readBytes(c, 1);
      c.destroy();
      await waitFor(() => proxy.stats().active === 0);
    };
    for (let i = 0; i < 4; i++) await once();
    // the balancer survived across answers: the targets alternate
    expect([a.accepted, b.accepted]).to.deep.equal([2, 2]);
    options = { v: 2 };
    await once();
    // a changed answer is a new route (before, the first route was kept for the same targets)
    expect(routes).to.deep.equal(["1", "1", "1", "1", "2"]);
    await proxy.close();
    await a.close();
    await b.close();
  });

  it("closes the client when a resolver refuses with FORBIDDEN", async () => {
    const backend = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [
        {
          name: "Gate",
          apply(p) {
            p.hooks.onResolve.tap({ name: "Gate", stage: Stage.ROUTE }, () => {
              throw new ResolveError("FORBIDDEN", "not for you");
            });
          },
        },
      ],
    });
    const c = await connectTo(port());
    await waitClose(c);
    await expectNoActiveConnections(proxy);
    expect(proxy.stats().closeReasons).to.deep.equal({ "no-route": 1 });
    expect(backend.accepted).to.equal(0);
    await proxy.close();
    await backend.close();
  });

  it("spreads connections with least-connections towards the least busy target", async () => {
    const a = await startEchoServer();
    const b = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ lb: "least-connections", targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] }],
    });
    const held = [];
    for (let i = 0; i < 4; i++) {
      const c = await connectTo(port());
      c.write("x");
      await readBytes(c, 1);
      held.push(c);
    }
    expect([a.accepted, b.accepted]).to.deep.equal([2, 2]);
    // free both connections on a: the next two go there
    held[0]!.destroy();
    held[2]!.destroy();
    await waitFor(() => proxy.stats().active === 2);
    for (let i = 0; i < 2; i++) {
      const c = await connectTo(port());
      c.write("y");
      await readBytes(c, 1);
      held.push(c);
    }
    expect([a.accepted, b.accepted]).to.deep.equal([4, 2]);
    for (const c of held) c.destroy();
    await expectNoActiveConnections(proxy);
    await proxy.close();
    await a.close();
    await b.close();
  });

  it("binds nothing when one listener cannot bind", async () => {
    const taken = await startEchoServer();
    const { Proxy, silentLogger } = await import("@switchyard/core");
    const proxy = new Proxy({
      logger: silentLogger,
      listeners: [
        { name: "ok", protocol: "tcp", host: "127.0.0.1", port: 0 },
        { name: "clash", protocol: "tcp", host: "127.0.0.1", port: taken.port },
      ],
      routes: [{ targets: ["127.0.0.1:1"] }],
    });
    const err = await proxy.listen().catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).to.equal("EADDRINUSE");
    expect(proxy.addresses()).to.deep.equal([]);
    await taken.close();
  });

  it("refuses to listen when a listener names a protocol nobody registered", async () => {
    const { Proxy, silentLogger, ConfigError } = await import("@switchyard/core");
    const proxy = new Proxy({ logger: silentLogger, listeners: [{ name: "w", protocol: "smtp", port: 0 }] });
    const err = await proxy.listen().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as Error).message).to.match(/no protocol "smtp"/);
  });
});
