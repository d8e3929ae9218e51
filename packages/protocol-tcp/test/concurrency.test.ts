import { expect } from "chai";
import { expectNoLeakedResources, resourceBaseline, startTcpServer, type TestServer } from "@switchyard/test-utils";
import { OK_PAYLOAD, startFakeMysql, type FakeMysql } from "./mysql-fake-backend.js";
import { myThrough, startMyProxy, type MyEnv } from "./mysql-helpers.js";
import { pgThrough, startPgProxy, type PgEnv } from "./pg-helpers.js";

/**
 * 200 clients connected at the same time (the local servers allow 100 and 151 connections, so
 * the backends here are scripted): every handshake completes, each PostgreSQL session holds a
 * cancel key of its own, and everything is released when the clients leave.
 */
describe("protocol-tcp: 200 clients at once", () => {
  let env: PgEnv | MyEnv | undefined;
  let backend: TestServer | FakeMysql | undefined;

  let baseline: Map<string, number>;
  beforeEach(() => {
    baseline = resourceBaseline();
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
    await backend?.close();
    backend = undefined;
    // nothing left open or scheduled: sockets, servers, timers
    await expectNoLeakedResources(baseline);
  });

  it("postgres: 200 sessions open together, 200 distinct cancel keys, all dropped after", async function () {
    this.timeout(30_000);
    let pid = 1000;
    backend = await startTcpServer((s) => {
      s.once("data", () => {
        const k = Buffer.from("4b0000000c" + (pid++).toString(16).padStart(8, "0") + "00000007", "hex");
        s.write(Buffer.concat([Buffer.from("520000000800000000", "hex"), k, Buffer.from("5a0000000549", "hex")]));
        s.on("data", () => s.end());
      });
    });
    const pg = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`] }]);
    env = pg;
    const clients = Array.from({ length: 200 }, () => pgThrough(pg.port()));
    await Promise.all(clients.map((c) => c.connect()));
    expect(pg.proxy.stats().active).to.equal(200);
    expect(pg.protocol.cancelKeyCount(pg.proxy)).to.equal(200);
    const keys = new Set(clients.map((c) => (c as unknown as { processID: number }).processID));
    expect(keys.size).to.equal(200);
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  });

  it("mysql: 200 authentications in flight together", async function () {
    this.timeout(30_000);
    backend = await startFakeMysql("mysql_native_password", Buffer.from("abcdefghijklmnopqrst"), (step) => (step === 0 ? [[2, OK_PAYLOAD]] : []));
    const my = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${backend.port}`] }]);
    env = my;
    const clients = await Promise.all(Array.from({ length: 200 }, () => myThrough(my.port(), { user: "u", database: "d" })));
    expect(my.proxy.stats().active).to.equal(200);
    await Promise.all(clients.map((c) => c.end()));
  });
});
