import { expect } from "chai";
import { PluginError, Proxy, Stage, silentLogger, type ProxyPlugin } from "@switchyard/core";
import {
  connectTo,
  expectNoActiveConnections,
  readAll,
  readBytes,
  startEchoServer,
  startProxy,
  waitClose,
  waitFor,
  type TestServer,
} from "@switchyard/test-utils";

function plugin(name: string, apply: (proxy: Proxy) => void): ProxyPlugin {
  return { name, apply };
}

describe("hooks", () => {
  let backend: TestServer;
  beforeEach(async () => {
    backend = await startEchoServer();
  });
  afterEach(async () => {
    await backend.close();
  });

  it("are frozen and declared once per proxy", () => {
    const proxy = new Proxy({ listeners: [], logger: silentLogger });
    expect(Object.isFrozen(proxy.hooks)).to.equal(true);
    expect(Object.keys(proxy.hooks)).to.deep.equal(["onAccept", "onResolve", "onRouted", "onRequest", "onUpstreamResponse", "onClose"]);
    expect(new Proxy({ listeners: [], logger: silentLogger }).hooks.onAccept).to.not.equal(proxy.hooks.onAccept);
  });

  it("run taps by stage, not by registration order", async () => {
    const order: string[] = [];
    const tapAt = (name: string, stage: number) =>
      plugin(name, (p) =>
        p.hooks.onAccept.tap({ name, stage }, () => {
          order.push(name);
          return undefined;
        }),
      );
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [tapAt("observe", Stage.OBSERVE), tapAt("transform", Stage.TRANSFORM), tapAt("access", Stage.ACCESS)],
    });
    const c = await connectTo(port());
    c.write("x");
    await readBytes(c, 1);
    expect(order).to.deep.equal(["access", "transform", "observe"]);
    c.destroy();
    await expectNoActiveConnections(proxy);
    await proxy.close();
  });

  it("onAccept bails at the first rejection and later taps do not run", async () => {
    const ran: string[] = [];
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [
        plugin("Deny", (p) =>
          p.hooks.onAccept.tap({ name: "Deny", stage: Stage.ACCESS }, () => {
            ran.push("deny");
            return { reason: "deny list" };
          }),
        ),
        plugin("Later", (p) =>
          p.hooks.onAccept.tap("Later", () => {
            ran.push("later");
            return undefined;
          }),
        ),
      ],
    });
    const reasons: string[] = [];
    proxy.events.on("connectionClose", (_c, i) => reasons.push(i.reason));
    const c = await connectTo(port());
    await waitClose(c);
    await waitFor(() => reasons.length === 1);
    expect(ran).to.deep.equal(["deny"]);
    expect(reasons).to.deep.equal(["rejected"]);
    expect(backend.accepted).to.equal(0);
    await proxy.close();
  });

  it("onResolve: the first answer by stage wins over the route table", async () => {
    const other = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ name: "table", targets: [`127.0.0.1:${backend.port}`] }],
      resolver: { resolve: () => `127.0.0.1:${other.port}` },
      ssrf: { allow: ["127.0.0.0/8"] },
    });
    const c = await connectTo(port());
    c.write("q");
    await readBytes(c, 1);
    expect(other.accepted).to.equal(1);
    expect(backend.accepted).to.equal(0);
    c.destroy();
    await expectNoActiveConnections(proxy);
    await proxy.close();
    await other.close();
  });

  it("a throwing tap becomes a PluginError naming hook and plugin, and fails only its connection", async () => {
    const errors: PluginError[] = [];
    let calls = 0;
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [
        plugin("Flaky", (p) =>
          p.hooks.onAccept.tapPromise("Flaky", async () => {
            if (++calls === 1) throw new Error("boom");
            return undefined;
          }),
        ),
      ],
    });
    proxy.events.on("pluginError", (e) => errors.push(e));
    const reasons: string[] = [];
    proxy.events.on("connectionClose", (_c, i) => reasons.push(i.reason));
    const bad = await connectTo(port());
    const good = await connectTo(port());
    await waitClose(bad);
    good.write("still fine");
    expect((await readBytes(good, 10)).toString()).to.equal("still fine");
    expect(errors).to.have.length(1);
    expect(errors[0]).to.be.instanceOf(PluginError);
    expect(errors[0]).to.include({ code: "PRX_ERR_PLUGIN", hook: "onAccept", plugin: "Flaky" });
    expect((errors[0]!.cause as Error).message).to.equal("boom");
    good.end();
    await readAll(good);
    await expectNoActiveConnections(proxy);
    expect(reasons.sort()).to.deep.equal(["done", "plugin-error"]);
    await proxy.close();
  });

  it("a synchronous throw in a sync tap is wrapped too", async () => {
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [
        plugin("SyncBoom", (p) =>
          p.hooks.onResolve.tap("SyncBoom", () => {
            throw new TypeError("bad");
          }),
        ),
      ],
    });
    const errors: PluginError[] = [];
    proxy.events.on("pluginError", (e) => errors.push(e));
    const c = await connectTo(port());
    await waitClose(c);
    await waitFor(() => errors.length === 1);
    expect(errors[0]).to.include({ hook: "onResolve", plugin: "SyncBoom" });
    await expectNoActiveConnections(proxy);
    await proxy.close();
  });

  it("onClose observes every connection once with its close info", async () => {
    const seen: Array<{ id: string; reason: string }> = [];
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      routes: [{ targets: [`127.0.0.1:${backend.port}`] }],
      plugins: [plugin("Obs", (p) => p.hooks.onClose.tap("Obs", (conn, info) => void seen.push({ id: conn.id, reason: info.reason })))],
    });
    const c = await connectTo(port());
    c.end();
    await waitClose(c);
    await waitFor(() => seen.length === 1);
    expect(seen[0]!.reason).to.equal("done");
    await proxy.close();
  });

  it("a plugin whose apply throws fails the constructor with a PluginError", () => {
    expect(
      () =>
        new Proxy({
          listeners: [],
          logger: silentLogger,
          plugins: [
            plugin("BadApply", () => {
              throw new Error("nope");
            }),
          ],
        }),
    ).to.throw(PluginError, /BadApply/);
  });
});

describe("dynamic resolver", () => {
  it("keeps round-robin state across lookups of the same answer", async () => {
    const a = await startEchoServer();
    const b = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      resolver: { resolve: () => [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] },
      ssrf: { allow: ["127.0.0.1/32"] },
    });
    for (let i = 0; i < 4; i++) {
      const c = await connectTo(port());
      c.write("x");
      await readBytes(c, 1);
      c.end();
      await waitClose(c);
    }
    expect([a.accepted, b.accepted]).to.deep.equal([2, 2]);
    await expectNoActiveConnections(proxy);
    await proxy.close();
    await a.close();
    await b.close();
  });

  it("refuses a resolver target in a private range (SSRF guard) and closes the client", async () => {
    const a = await startEchoServer();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "t", protocol: "tcp", port: 0 }],
      resolver: { resolve: () => `127.0.0.1:${a.port}` },
    });
    const errors: string[] = [];
    proxy.events.on("upstreamError", (e) => errors.push(e.error.code));
    const c = await connectTo(port());
    await waitClose(c);
    await waitFor(() => errors.length === 1);
    expect(errors).to.deep.equal(["PRX_ERR_SSRF_BLOCKED"]);
    expect(a.accepted).to.equal(0);
    await expectNoActiveConnections(proxy);
    await proxy.close();
    await a.close();
  });
});
