import { expect } from "chai";
import { UpstreamConnectError } from "@switchyard/core";
import { RetryPlugin, type GiveUpEvent, type RetryEvent } from "@switchyard/plugin-retry";
import {
  closedPort,
  expectNoActiveConnections,
  readBytes,
  startEchoServer,
  waitClose,
  useTcpFixture,
} from "@switchyard/test-utils";

describe("RetryPlugin with TCP (core connectUpstream)", () => {
  // leak checks stay with the core's own TCP tests; here only active connections must reach zero
  const fx = useTcpFixture({ leakCheck: false });
  const client = fx.client;

  it("retries a refused connect on the route's second target", async () => {
    const backend = await fx.serve(startEchoServer());
    const refused = await closedPort();
    const plugin = new RetryPlugin({ retries: 2, backoff: { base: 1, max: 5 } });
    const started = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
      routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${refused}`, `127.0.0.1:${backend.port}`] }],
      plugins: [plugin],
    });
    const events: RetryEvent[] = [];
    RetryPlugin.getHooks(started.proxy).onRetry.tap("test", (e) => void events.push(e));
    // round-robin starts with the refusing target; two connections make sure both orders work
    for (let i = 0; i < 2; i++) {
      const c = await client(started.port());
      c.write("ping");
      expect((await readBytes(c, 4)).toString()).to.equal("ping");
      c.destroy();
    }
    expect(events.length).to.be.at.least(1);
    expect(events[0]).to.include({ protocol: "tcp", attempt: 1, condition: "connect" });
    expect(events[0]!.target?.port).to.equal(refused);
    expect(backend.accepted).to.equal(2);
  });

  it("gives up after `retries` and closes the client when every target refuses", async () => {
    const refused = await closedPort();
    const started = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
      routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${refused}`] }],
      plugins: [new RetryPlugin({ retries: 2, backoff: { base: 1, max: 2 } })],
    });
    const hooks = RetryPlugin.getHooks(started.proxy);
    expect(RetryPlugin.getHooks(started.proxy)).to.equal(hooks);
    const retries: RetryEvent[] = [];
    const giveUps: GiveUpEvent[] = [];
    hooks.onRetry.tap("test", (e) => void retries.push(e));
    hooks.onGiveUp.tap("test", (e) => void giveUps.push(e));
    const errors: unknown[] = [];
    started.proxy.events.on("upstreamError", (e) => errors.push(e.error));
    const c = await client(started.port());
    await waitClose(c);
    expect(retries.map((e) => e.attempt)).to.deep.equal([1, 2]);
    expect(giveUps).to.have.length(1);
    expect(giveUps[0]).to.include({ attempt: 3, why: "exhausted", condition: "connect" });
    expect(errors).to.have.length(3);
    expect(errors[0]).to.be.instanceOf(UpstreamConnectError);
  });

  it("stops retrying when the budget is spent", async () => {
    const refused = await closedPort();
    const started = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
      routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${refused}`] }],
      plugins: [new RetryPlugin({ retries: 5, backoff: { base: 0, max: 0 }, budget: { ratio: 0, minPerSecond: 0.2, windowMs: 10_000 } })],
    });
    const giveUps: GiveUpEvent[] = [];
    RetryPlugin.getHooks(started.proxy).onGiveUp.tap("test", (e) => void giveUps.push(e));
    let attempts = 0;
    started.proxy.events.on("upstreamError", () => attempts++);
    const c = await client(started.port());
    await waitClose(c);
    expect(attempts).to.equal(3); // floor of 0.2/s x 10 s = 2 retries
    expect(giveUps.map((g) => g.why)).to.deep.equal(["budget"]);
  });

  it("cancels the backoff when the client goes away", async () => {
    const refused = await closedPort();
    const started = await fx.start({
      listeners: [{ name: "tcp", protocol: "tcp", port: 0 }],
      routes: [{ name: "r", listener: "tcp", targets: [`127.0.0.1:${refused}`] }],
      plugins: [new RetryPlugin({ retries: 3, backoff: { base: 10_000, max: 10_000 } }, { random: () => 0.99 })],
    });
    let attempts = 0;
    started.proxy.events.on("upstreamError", () => attempts++);
    const retried = new Promise<void>((r) => RetryPlugin.getHooks(started!.proxy).onRetry.tap("test", () => r()));
    const c = await client(started.port());
    await retried;
    c.resetAndDestroy(); // an RST: a FIN is not seen while core has not started reading the client
    await expectNoActiveConnections(started.proxy, 2000);
    expect(attempts).to.equal(1);
  });
});
