import type { Socket } from "node:net";
import { expect } from "chai";
import { MysqlProtocol, PostgresProtocol } from "@switchyard/protocol-tcp";
import { connectTo, expectNoActiveConnections, readAll, startProxy, waitFor, type StartedProxy } from "@switchyard/test-utils";
import { pgThrough } from "./pg-helpers.js";
import { connectError } from "./mysql-helpers.js";

/**
 * Core-originated closes (a listener's maxConnections, an onAccept rejection, the handshake
 * deadline) reach the client in its protocol's terms through `refuse()`: core calls it, the
 * protocol writes its answer, core ends the socket and closes the connection.
 */
describe("refusal in protocol terms", () => {
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

  async function proxyFor(protocol: "postgres" | "mysql", listener: Record<string, unknown>): Promise<StartedProxy> {
    const p = await startProxy({
      listeners: [{ name: "l", protocol, port: 0, ...listener }],
      // never reached: every connection here is refused before routing
      routes: [{ name: "any", listener: "l", targets: ["127.0.0.1:1"] }],
      plugins: [new PostgresProtocol(), new MysqlProtocol()],
    });
    started.push(p);
    return p;
  }

  async function holdOne(p: StartedProxy): Promise<void> {
    sockets.push(await connectTo(p.port()));
    await waitFor(() => p.proxy.connections.size === 1, 2000, "the first connection to be accepted");
  }

  it("postgres: ErrorResponse 53300 over the listener's maxConnections", async () => {
    const p = await proxyFor("postgres", { maxConnections: 1 });
    await holdOne(p);
    const err = await pgThrough(p.port()).connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("53300");
  });

  it("postgres: ErrorResponse 57P03 for an onAccept rejection", async () => {
    const p = await proxyFor("postgres", {});
    p.proxy.hooks.onAccept.tap("deny", () => ({ reason: "denied by test" }));
    const err = await pgThrough(p.port()).connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("57P03");
  });

  it("postgres: ErrorResponse 08006 when no startup packet arrives in time", async () => {
    const p = await proxyFor("postgres", { timeouts: { handshake: 150 } });
    const s = await connectTo(p.port());
    sockets.push(s);
    const bytes = await readAll(s);
    expect(bytes[0]).to.equal(0x45); // 'E'
    expect(bytes.toString("latin1")).to.contain("C08006");
  });

  it("mysql: ERR 1040 in place of the greeting over the listener's maxConnections", async () => {
    const p = await proxyFor("mysql", { maxConnections: 1 });
    await holdOne(p);
    const err = await connectError(p.port(), { user: "u" });
    expect(err?.errno).to.equal(1040);
    expect(err?.message).to.equal("Too many connections");
  });
});
