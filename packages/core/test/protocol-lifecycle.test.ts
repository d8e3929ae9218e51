import { expect } from "chai";
import { AsyncSeriesBailHook, AsyncSeriesWaterfallHook, SyncHook } from "tapable";
import { defineHooks, PluginError, Proxy, silentLogger, type Logger } from "@switchyard/core";
import { connectTo, startProxy, waitFor } from "@switchyard/test-utils";
import { LineProtocol } from "./line-protocol.js";

describe("protocol close()", () => {
  it("is called once by Proxy.close(), after every connection is closed", async () => {
    const protocol = new LineProtocol({ refuse: "none" });
    const { proxy, port } = await startProxy({
      listeners: [{ name: "l", protocol: "line", port: 0 }],
      routes: [{ targets: ["127.0.0.1:1"] }],
      plugins: [protocol],
    });
    // a connection still waiting for its line when the proxy closes
    const s = await connectTo(port());
    s.on("error", () => {});
    await waitFor(() => proxy.connections.size === 1, 2000, "the connection to be accepted");
    expect(protocol.closeCalls).to.deep.equal([]);
    await proxy.close({ timeout: 100 });
    expect(protocol.closeCalls).to.deep.equal([0]);
    await proxy.close();
    expect(protocol.closeCalls).to.deep.equal([0]);
    s.destroy();
  });

  it("a failing close() is logged and the others still run", async () => {
    const errors: Array<Record<string, unknown> | undefined> = [];
    const logger: Logger = { ...silentLogger, error: (_msg, fields) => errors.push(fields) };
    const good = new LineProtocol({ name: "good" });
    const bad = new LineProtocol({ name: "bad" });
    bad.close = () => {
      throw new Error("close failed on purpose");
    };
    const proxy = new Proxy({ listeners: [], logger, plugins: [bad, good] });
    await proxy.close();
    expect(good.closeCalls).to.deep.equal([0]);
    expect(errors).to.deep.equal([{ protocol: "bad", error: "close failed on purpose" }]);
  });
});

describe("defineHooks", () => {
  function packageHooks() {
    return defineHooks({
      onMailFrom: new AsyncSeriesBailHook<[string], { code: number } | undefined>(["from"]),
      onData: new AsyncSeriesWaterfallHook<[Buffer]>(["data"]),
      onQuit: new SyncHook<[string]>(["reason"]),
    });
  }

  it("builds a frozen set whose hooks are unused until tapped", () => {
    const hooks = packageHooks();
    expect(Object.isFrozen(hooks)).to.equal(true);
    expect(hooks.onMailFrom.isUsed()).to.equal(false);
    hooks.onMailFrom.tap("Deny", () => undefined);
    expect(hooks.onMailFrom.isUsed()).to.equal(true);
    expect(hooks.onQuit.isUsed()).to.equal(false);
  });

  it("wraps a throwing or rejecting tap in a PluginError naming hook and plugin", async () => {
    const hooks = packageHooks();
    hooks.onMailFrom.tapPromise("Greylist", async (from) => (from.endsWith("@spam.test") ? Promise.reject(new Error("boom")) : undefined));
    hooks.onQuit.tap("Audit", () => {
      throw new Error("sync boom");
    });
    const err = await hooks.onMailFrom.promise("x@spam.test").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(PluginError);
    expect((err as PluginError).hook).to.equal("onMailFrom");
    expect((err as PluginError).plugin).to.equal("Greylist");
    expect((err as PluginError).message).to.match(/boom/);
    expect(await hooks.onMailFrom.promise("a@ok.test")).to.equal(undefined);
    expect(() => hooks.onQuit.call("bye")).to.throw(PluginError, /plugin "Audit" failed in hook onQuit: sync boom/);
  });

  it("passes values through taps as tapable does", async () => {
    const hooks = packageHooks();
    hooks.onData.tap("Upper", (b) => Buffer.from(b.toString().toUpperCase()));
    hooks.onMailFrom.tap("Deny", (from) => (from.startsWith("root@") ? { code: 550 } : undefined));
    expect((await hooks.onData.promise(Buffer.from("abc"))).toString()).to.equal("ABC");
    expect(await hooks.onMailFrom.promise("root@x")).to.deep.equal({ code: 550 });
  });
});
