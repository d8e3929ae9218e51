import { expect } from "chai";
import { ConfigError, createJsonLogger, Proxy, silentLogger, type Connection, type ProtocolHandler, type ProxyPlugin } from "@switchyard/core";
import { connectTo, sleep, startEchoServer, waitClose, waitFor } from "@switchyard/test-utils";

// Per-route counters in stats(), and listen() called more than once.

/** A protocol that routes each connection once per name in `hosts`, in order, then closes it. */
class Rerouting implements ProxyPlugin, ProtocolHandler {
  readonly name = "rerouting";
  readonly hosts: string[];
  constructor(hosts: string[]) {
    this.hosts = hosts;
  }
  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
  }
  async handle(conn: Connection): Promise<void> {
    for (const host of this.hosts) {
      await conn.proxy.resolve(conn, { listener: conn.listener.name, protocol: this.name, clientIp: conn.clientIp, host });
    }
    conn.destroy("done");
  }
}

describe("route stats", () => {
  const proxies: Proxy[] = [];
  afterEach(async () => {
    for (const p of proxies.splice(0)) await p.close({ timeout: 100 });
  });
  const make = (o: ConstructorParameters<typeof Proxy>[0]) => {
    const p = new Proxy({ logger: silentLogger, ...o });
    proxies.push(p);
    return p;
  };

  it("counts a route out when its connection closed while the resolver was still answering", async () => {
    const echo = await startEchoServer();
    try {
      const p = make({
        listeners: [{ name: "t", protocol: "tcp", host: "127.0.0.1", port: 0 }],
        resolver: { resolve: async () => (await sleep(200), { name: "dyn", targets: [`127.0.0.1:${echo.port}`] }) },
        ssrf: { disabled: true },
      });
      await p.listen();
      const c = await connectTo(p.address("t").port);
      await sleep(50);
      c.resetAndDestroy();
      await waitFor(() => p.stats().active === 0);
      await sleep(250); // the answer arrives after the close
      expect(p.stats().routes).to.deep.equal({});
      expect(echo.accepted).to.equal(0);
    } finally {
      await echo.close();
    }
  });

  it("moves a connection routed again (keep-alive) from one route's count to the other's", async () => {
    const p = make({
      listeners: [{ name: "t", protocol: "rerouting", host: "127.0.0.1", port: 0 }],
      routes: [
        { name: "A", match: { host: "a.test" }, targets: ["127.0.0.1:1"] },
        { name: "B", match: { host: "b.test" }, targets: ["127.0.0.1:1"] },
      ],
      plugins: [new Rerouting(["a.test", "a.test", "b.test"])],
    });
    await p.listen();
    const c = await connectTo(p.address("t").port);
    await waitClose(c);
    await waitFor(() => p.stats().active === 0);
    expect(p.stats().routes).to.deep.equal({ A: { active: 0, total: 1 }, B: { active: 0, total: 1 } });
  });

  it("keeps the route table of stats() bounded under a resolver, however many keys it sees", async () => {
    const hosts = Array.from({ length: 1100 }, (_, i) => `h${i}.test`);
    const run = async (named: boolean) => {
      const p = make({
        listeners: [{ name: "t", protocol: "rerouting", host: "127.0.0.1", port: 0 }],
        resolver: { resolve: (key) => (named ? { name: key.host!, targets: ["127.0.0.1:1"] } : "127.0.0.1:1") },
        ssrf: { disabled: true },
        plugins: [new Rerouting(hosts)],
      });
      await p.listen();
      const c = await connectTo(p.address("t").port);
      await waitClose(c);
      await waitFor(() => p.stats().active === 0);
      return p.stats().routes;
    };
    // an unnamed answer is the route "resolver" (it was named after the key: one route per path)
    expect(await run(false)).to.deep.equal({ resolver: { active: 0, total: 1 } });
    // answers that name themselves after the key: idle routes beyond 1000 are forgotten
    const named = await run(true);
    expect(Object.keys(named).length).to.equal(1000);
    expect(named["h1099.test"]).to.deep.equal({ active: 0, total: 1 });
  });

  it("binds each listener once when listen() is called twice at once, and refuses listen() after close()", async () => {
    const p = make({ listeners: [{ name: "t", protocol: "tcp", host: "127.0.0.1", port: 0 }], routes: [{ targets: ["127.0.0.1:1"] }] });
    const servers = () => process.getActiveResourcesInfo().filter((r) => r === "TCPServerWrap").length;
    const before = servers();
    await Promise.all([p.listen(), p.listen()]);
    expect(servers() - before).to.equal(1);
    await p.close({ timeout: 100 });
    await waitFor(() => servers() === before);
    let err: unknown;
    await p.listen().catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(ConfigError);
    expect(servers()).to.equal(before);
  });
});

describe("event listeners", () => {
  it("a throwing connectionClose listener is logged; the proxy, its counts and later connections go on", async () => {
    const echo = await startEchoServer();
    const lines: string[] = [];
    const p = new Proxy({
      listeners: [{ name: "t", protocol: "tcp", host: "127.0.0.1", port: 0 }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
      logger: createJsonLogger((l) => lines.push(l), "error"),
    });
    try {
      p.events.on("connectionClose", () => {
        throw new Error("listener bug");
      });
      await p.listen();
      for (let i = 0; i < 2; i++) {
        const c = await connectTo(p.address("t").port);
        c.end();
        await waitClose(c);
      }
      await waitFor(() => p.stats().active === 0);
      expect(p.stats().total).to.equal(2);
      expect(lines.filter((l) => l.includes("event listener failed") && l.includes("listener bug"))).to.have.length(2);
    } finally {
      await p.close({ timeout: 100 });
      await echo.close();
    }
  });
});
