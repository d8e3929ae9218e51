import { expect } from "chai";
import { Connection, Proxy, silentLogger, type CloseReason } from "@switchyard/core";
import { MysqlProtocol, PostgresProtocol } from "@switchyard/protocol-tcp";
import { startTcpServer, waitFor, type TestServer } from "@switchyard/test-utils";
import { pgThrough } from "./pg-helpers.js";
import { connectError } from "./mysql-helpers.js";

/**
 * `refuse(conn, reason)`: the answer each protocol gives a connection the proxy will not serve
 * (for core-originated refusals). Core does not call it yet, so the test accepts sockets itself
 * and hands each to a Connection of a proxy that is not listening.
 */
describe("refusal in protocol terms", () => {
  let server: TestServer | undefined;
  let closed: CloseReason[] = [];

  afterEach(async () => {
    await server?.close();
    server = undefined;
    closed = [];
  });

  async function refusing(protocol: "postgres" | "mysql", reason: CloseReason): Promise<number> {
    const pg = new PostgresProtocol();
    const my = new MysqlProtocol();
    const proxy = new Proxy({ listeners: [{ name: "l", protocol, port: 0 }], plugins: [pg, my], logger: silentLogger });
    server = await startTcpServer((socket) => {
      const conn = new Connection(proxy, proxy.listeners[0]!, socket);
      const mine = closed;
      conn.onDestroy((reason) => mine.push(reason));
      socket.on("close", () => conn.clientClosed());
      socket.on("error", () => {});
      (protocol === "postgres" ? pg : my).refuse(conn, reason);
    });
    return server.port;
  }

  it("postgres: 53300 for a limit, 57P01 for a shutdown", async () => {
    const port = await refusing("postgres", "rejected");
    const err = await pgThrough(port).connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("53300");
    await server!.close();
    const port2 = await refusing("postgres", "shutdown");
    const err2 = await pgThrough(port2).connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err2?.code).to.equal("57P01");
  });

  it("mysql: ERR 1040 in place of the greeting for a limit", async () => {
    const port = await refusing("mysql", "rejected");
    const err = await connectError(port, { user: "u" });
    expect(err?.errno).to.equal(1040);
    expect(err?.message).to.equal("Too many connections");
  });

  it("closes with the refusal's reason", async () => {
    const port = await refusing("mysql", "shutdown");
    const err = await connectError(port, { user: "u" });
    expect(err?.errno).to.equal(1053);
    await waitFor(() => closed.length === 1, 3000, "the close");
    expect(closed).to.deep.equal(["shutdown"]);
  });
});
