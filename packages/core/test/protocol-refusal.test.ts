import type { Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { expect } from "chai";
import { ConnectionRejectedError, UpstreamTimeoutError, type ProxyOptions } from "@switchyard/core";
import { connectTo, createTestCa, expectNoActiveConnections, readAll, startProxy, waitFor, type StartedProxy } from "@switchyard/test-utils";
import { LineProtocol, type LineProtocolOptions } from "./line-protocol.js";

// Core-originated closes (a listener's connection limit, an onAccept rejection, the handshake
// deadline) go through the protocol's refuse(), so the client hears why in the protocol's terms.
describe("refusals in protocol terms", () => {
  const started: StartedProxy[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const p of started.splice(0)) {
      try {
        await expectNoActiveConnections(p.proxy);
      } finally {
        await p.proxy.close({ timeout: 100 });
      }
    }
  });

  async function lineProxy(protocolOptions: LineProtocolOptions, extra: Partial<ProxyOptions> & { listener?: Record<string, unknown> } = {}) {
    const protocol = new LineProtocol(protocolOptions);
    const { listener, ...rest } = extra;
    const p = await startProxy({
      listeners: [{ name: "l", protocol: "line", port: 0, ...listener }],
      routes: [{ name: "any", targets: ["127.0.0.1:1"] }],
      plugins: [protocol],
      ...rest,
    });
    started.push(p);
    const closes: Array<{ reason: string; error: unknown }> = [];
    p.proxy.events.on("connectionClose", (_c, info) => closes.push({ reason: info.reason, error: info.error }));
    return { ...p, protocol, closes };
  }

  async function client(port: number): Promise<Socket> {
    const s = await connectTo(port);
    sockets.push(s);
    return s;
  }

  it("answers a connection over the listener's maxConnections through refuse(), then closes it", async () => {
    const p = await lineProxy({}, { listener: { maxConnections: 1 } });
    const first = await client(p.port());
    await waitFor(() => p.proxy.connections.size === 1, 2000, "the first connection to be accepted");
    const second = await client(p.port());
    expect((await readAll(second)).toString()).to.equal("REFUSED connection-limit\n");
    expect(p.protocol.refusals).to.have.length(1);
    expect(p.protocol.refusals[0]!.reason).to.equal("rejected");
    expect(p.protocol.refusals[0]!.error).to.be.instanceOf(ConnectionRejectedError);
    expect(p.protocol.refusals[0]!.error.message).to.match(/maxConnections \(1\)/);
    // the first connection is untouched
    first.write("x=1\n");
    expect((await readAll(first)).toString()).to.equal("ROUTE any\n");
    expect(p.closes.map((c) => c.reason).sort()).to.deep.equal(["done", "rejected"]);
  });

  it("answers an onAccept rejection through refuse(), with the tap's reason in the error", async () => {
    const p = await lineProxy({});
    p.proxy.hooks.onAccept.tap("deny", () => ({ reason: "denied by test" }));
    const s = await client(p.port());
    expect((await readAll(s)).toString()).to.equal("REFUSED rejected\n");
    const refusal = p.protocol.refusals[0]!;
    expect(refusal.kind).to.equal("rejected");
    expect(refusal.error).to.be.instanceOf(ConnectionRejectedError);
    expect(refusal.error.message).to.match(/denied by test/);
    await expectNoActiveConnections(p.proxy);
    expect(p.closes[0]!.reason).to.equal("rejected");
  });

  it("answers a handshake timeout through refuse() while the protocol is still waiting", async () => {
    const p = await lineProxy({}, { timeouts: { handshake: 100 } });
    const s = await client(p.port());
    const started = Date.now();
    expect((await readAll(s)).toString()).to.equal("REFUSED handshake-timeout\n");
    expect(Date.now() - started).to.be.lessThan(1000);
    expect(p.protocol.refusals[0]!.error).to.be.instanceOf(UpstreamTimeoutError);
    await expectNoActiveConnections(p.proxy);
    expect(p.closes[0]!.reason).to.equal("handshake-timeout");
  });

  it("bounds a refusal that never finishes, and survives one that throws", async () => {
    const hang = await lineProxy({ refuse: "hang" }, { timeouts: { handshake: 50 } });
    const s = await client(hang.port());
    const t0 = Date.now();
    await readAll(s);
    const took = Date.now() - t0;
    expect(took).to.be.within(900, 3000);
    await expectNoActiveConnections(hang.proxy);
    expect(hang.closes[0]!.reason).to.equal("handshake-timeout");

    const failing = await lineProxy({ refuse: "throw" }, { timeouts: { handshake: 50 } });
    const f = await client(failing.port());
    expect((await readAll(f)).toString()).to.equal("");
    await expectNoActiveConnections(failing.proxy);
    expect(failing.closes[0]!.reason).to.equal("handshake-timeout");
    // the listener still serves
    const ok = await client(failing.port());
    ok.write("a=b\n");
    expect((await readAll(ok)).toString()).to.equal("ROUTE any\n");
  });

  it("closes at once when the protocol has no refuse(), or the client expects TLS first", async () => {
    const plain = await lineProxy({ refuse: "none" }, { listener: { maxConnections: 0 } });
    const s = await client(plain.port());
    expect((await readAll(s)).toString()).to.equal("");
    await expectNoActiveConnections(plain.proxy);
    expect(plain.closes[0]!.reason).to.equal("rejected");

    // a TLS listener at its limit: a plaintext answer would be garbage to a TLS client
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "a.test" });
    const tls = await lineProxy({}, { listener: { maxConnections: 0, tls: { cert: leaf.cert, key: leaf.key } } });
    const c = tlsConnect({ port: tls.port(), host: "127.0.0.1", servername: "a.test", ca: ca.cert });
    c.on("error", () => {});
    await new Promise((resolve) => c.once("close", resolve));
    expect(tls.protocol.refusals).to.deep.equal([]);
    await expectNoActiveConnections(tls.proxy);
  });
});
