import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { expect } from "chai";
import type { ProxyOptions } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { expectNoActiveConnections, readAll, startProxy, waitFor, type StartedProxy } from "@switchyard/test-utils";

// Core-originated closes reach an HTTP client as an HTTP answer (HttpProtocol.refuse): 503 for a
// listener's connection limit and an onAccept rejection, 408 for the handshake deadline.
describe("core refusals answered in HTTP", () => {
  const started: Array<{ p: StartedProxy; protocol: HttpProtocol }> = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const { p, protocol } of started.splice(0)) {
      try {
        await expectNoActiveConnections(p.proxy);
      } finally {
        await p.proxy.close({ timeout: 100 });
        protocol.close();
      }
    }
  });

  async function httpProxy(listener: Record<string, unknown> = {}, extra: Partial<ProxyOptions> = {}): Promise<StartedProxy> {
    const protocol = new HttpProtocol();
    const p = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0, ...listener }],
      routes: [{ name: "r", targets: ["127.0.0.1:1"] }],
      plugins: [protocol],
      ...extra,
    });
    started.push({ p, protocol });
    return p;
  }

  async function client(port: number): Promise<Socket> {
    const s = connect(port, "127.0.0.1");
    sockets.push(s);
    s.on("error", () => {});
    await once(s, "connect");
    return s;
  }

  it("answers 503 over the listener's maxConnections", async () => {
    const p = await httpProxy({ maxConnections: 1 });
    await client(p.port());
    await waitFor(() => p.proxy.connections.size === 1, 2000, "the first connection to be accepted");
    const second = await client(p.port());
    second.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const answer = (await readAll(second)).toString();
    expect(answer).to.match(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(answer).to.include("Connection: close\r\n");
  });

  it("answers 503 to an onAccept rejection", async () => {
    const p = await httpProxy();
    p.proxy.hooks.onAccept.tap("deny", () => ({ reason: "no" }));
    const s = await client(p.port());
    s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect((await readAll(s)).toString()).to.match(/^HTTP\/1\.1 503 /);
  });

  it("answers 408 when the handshake deadline passes before a request head", async () => {
    const p = await httpProxy({ timeouts: { handshake: 100 } });
    const s = await client(p.port());
    s.write("GET / HT");
    expect((await readAll(s)).toString()).to.match(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });
});
