import { expect } from "chai";
import { ResolveError, Stage } from "@switchyard/core";
import { closedPort, createTestCa, forEachConcurrently } from "@switchyard/test-utils";
import { runCli } from "./cli-run.js";
import { startForwarder, type Forwarder } from "./pg-helpers.js";
import { MY_TARGET, connectError, myAdmin, myThrough, startMyProxy, type MyEnv } from "./mysql-helpers.js";

const DB_A = "sy_myroute_a";
const DB_B = "sy_myroute_b";
const USER = "sy_myuser";
const PASSWORD = "sy-Secret-7";

describe("MysqlProtocol authentication and routing (MariaDB)", () => {
  let env: MyEnv | undefined;
  let forwarder: Forwarder | undefined;

  before(async () => {
    await myAdmin(
      `DROP DATABASE IF EXISTS ${DB_A}`,
      `DROP DATABASE IF EXISTS ${DB_B}`,
      `CREATE DATABASE ${DB_A}`,
      `CREATE DATABASE ${DB_B}`,
      `DROP USER IF EXISTS '${USER}'@'127.0.0.1'`,
      `CREATE USER '${USER}'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}'`,
      `GRANT ALL ON ${DB_A}.* TO '${USER}'@'127.0.0.1'`,
      `GRANT ALL ON ${DB_B}.* TO '${USER}'@'127.0.0.1'`,
    );
  });
  after(async () => {
    await myAdmin(`DROP USER IF EXISTS '${USER}'@'127.0.0.1'`, `DROP DATABASE IF EXISTS ${DB_A}`, `DROP DATABASE IF EXISTS ${DB_B}`);
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
    await forwarder?.close();
    forwarder = undefined;
  });

  it("authenticates a user with a password the proxy never knew, and routes by database to two targets", async () => {
    forwarder = await startForwarder(3306);
    env = await startMyProxy([
      { name: "a", listener: "my", match: { database: DB_A }, targets: [MY_TARGET] },
      { name: "b", listener: "my", match: { database: DB_B, user: "sy_*" }, targets: [`127.0.0.1:${forwarder.port}`] },
    ]);
    const a = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_A });
    const [rowsA] = await a.query("select database() as db, current_user() as u");
    expect(rowsA).to.deep.equal([{ db: DB_A, u: `${USER}@127.0.0.1` }]);
    await a.end();
    expect(forwarder.accepted).to.equal(0);
    const b = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_B });
    const [rowsB] = await b.query("select database() as db");
    expect(rowsB).to.deep.equal([{ db: DB_B }]);
    await b.end();
    expect(forwarder.accepted).to.equal(1);
  });

  it("answers ERR 1049 when no route matches the database", async () => {
    env = await startMyProxy([{ listener: "my", match: { database: DB_A }, targets: [MY_TARGET] }]);
    const err = await connectError(env.port(), { user: USER, password: PASSWORD, database: "nowhere" });
    expect(err?.errno).to.equal(1049);
    expect(err?.sqlState).to.equal("42000");
    expect(err?.message).to.contain("nowhere");
  });

  it("maps a resolver's FORBIDDEN to 1045 and UNAVAILABLE to 9001", async () => {
    const refusing = {
      name: "Refusing",
      apply(proxy: import("@switchyard/core").Proxy) {
        proxy.hooks.onResolve.tap({ name: "Refusing", stage: Stage.ROUTE }, ({ key }) => {
          throw new ResolveError(key.database === "busy" ? "UNAVAILABLE" : "FORBIDDEN");
        });
      },
    };
    env = await startMyProxy([{ listener: "my", targets: [MY_TARGET] }], {}, {}, [refusing]);
    expect((await connectError(env.port(), { user: USER, password: PASSWORD, database: "secret" }))?.errno).to.equal(1045);
    expect((await connectError(env.port(), { user: USER, password: PASSWORD, database: "busy" }))?.errno).to.equal(9001);
  });

  it("passes the backend's own 1045 for a wrong password", async () => {
    env = await startMyProxy([{ listener: "my", targets: [MY_TARGET] }]);
    const err = await connectError(env.port(), { user: USER, password: "wrong", database: DB_A });
    expect(err?.errno).to.equal(1045);
    expect(err?.message).to.contain(`Access denied for user '${USER}'`);
  });

  it("answers HY000 9001 when the backend is unreachable", async () => {
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${await closedPort()}`] }]);
    const err = await connectError(env.port(), { user: USER, password: PASSWORD, database: DB_A });
    expect(err?.errno).to.equal(9001);
    expect(err?.sqlState).to.equal("HY000");
  });

  it("rewrites the database per route: the virtual tenant_7 is the shared database", async () => {
    env = await startMyProxy([{ listener: "my", match: { database: "tenant_*" }, targets: [MY_TARGET], options: { mysql: { database: DB_A } } }]);
    const c = await myThrough(env.port(), { user: USER, password: PASSWORD, database: "tenant_7" });
    const [rows] = await c.query("select database() as db");
    expect(rows).to.deep.equal([{ db: DB_A }]);
    await c.end();
  });

  it("relays a large result set and prepared statements", async function () {
    this.timeout(30_000);
    env = await startMyProxy([{ listener: "my", targets: [MY_TARGET] }]);
    const c = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_A });
    const [rows] = await c.query("select seq, repeat('x', 100) as pad from seq_1_to_200000");
    const list = rows as Array<{ seq: number; pad: string }>;
    expect(list.length).to.equal(200_000);
    expect(list.reduce((s, r) => s + r.seq, 0)).to.equal((200_000 * 200_001) / 2);
    const [p] = await c.execute("select ? + ? as s, ? as t", [40, 2, "héllo"]);
    expect(p).to.deep.equal([{ s: 42, t: "héllo" }]);
    const [again] = await c.execute("select ? + ? as s, ? as t", [1, 2, "x"]);
    expect(again).to.deep.equal([{ s: 3, t: "x" }]);
    await c.end();
  });

  it("serves 200 clients, 50 at a time (the server allows 151 connections)", async function () {
    this.timeout(60_000);
    env = await startMyProxy([{ listener: "my", match: { database: DB_A }, targets: [MY_TARGET] }]);
    const ids = Array.from({ length: 200 }, (_, i) => i);
    const seen: number[] = [];
    await forEachConcurrently(ids, 50, async (i) => {
      const c = await myThrough(env!.port(), { user: USER, password: PASSWORD, database: DB_A });
      const [rows] = await c.execute("select ? as n", [i]);
      seen.push((rows as Array<{ n: number }>)[0]!.n);
      await c.end();
    });
    expect(seen.sort((x, y) => x - y)).to.deep.equal(ids);
  });

  it("takes TLS from the client (CLIENT_SSL, SSLRequest, TLS in place) with a plaintext backend leg", async () => {
    const ca = createTestCa();
    const cert = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
    env = await startMyProxy([{ listener: "my", targets: [MY_TARGET] }], { tls: { cert: cert.cert, key: cert.key } });
    const c = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_A, ssl: { ca: ca.cert } });
    const [rows] = await c.query("show session status like 'Ssl_cipher'");
    expect((rows as Array<{ Value: string }>)[0]!.Value).to.equal("");
    const stream = (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
    expect(stream.encrypted).to.equal(true);
    await c.end();
  });

  it("does not re-route USE other_db or COM_CHANGE_USER: both stay on the backend chosen at connect", async () => {
    forwarder = await startForwarder(3306);
    env = await startMyProxy([
      { name: "a", listener: "my", match: { database: DB_A }, targets: [MY_TARGET] },
      { name: "b", listener: "my", match: { database: DB_B }, targets: [`127.0.0.1:${forwarder.port}`] },
    ]);
    const c = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_A });
    const [[before]] = (await c.query("select connection_id() as id")) as unknown as [[{ id: number }]];
    await c.query(`USE ${DB_B}`);
    await c.changeUser({ user: USER, password: PASSWORD, database: DB_B });
    const [[after]] = (await c.query("select connection_id() as id, database() as db")) as unknown as [[{ id: number; db: string }]];
    expect(after).to.deep.equal({ id: before.id, db: DB_B });
    expect(forwarder.accepted).to.equal(0);
    await c.end();
  });

  it("KILL QUERY with the backend's CONNECTION_ID() works from a connection routed to the same backend", async function () {
    this.timeout(30_000);
    env = await startMyProxy([{ listener: "my", targets: [MY_TARGET] }]);
    const busy = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_A });
    const [[{ id }]] = (await busy.query("select connection_id() as id")) as unknown as [[{ id: number }]];
    const sleeping = busy.query("select sleep(20)").then(
      () => undefined,
      (e: Error & { errno?: number }) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    const admin = await myThrough(env.port(), { user: USER, password: PASSWORD, database: DB_A });
    await admin.query(`KILL QUERY ${id}`);
    expect((await sleeping)?.errno).to.equal(1317);
    await admin.end();
    await busy.end();
  });

  it("works with the mariadb command-line client over TLS terminated at the proxy", async function () {
    this.timeout(20_000);
    const ca = createTestCa();
    const cert = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
    env = await startMyProxy([{ listener: "my", targets: [MY_TARGET] }], { tls: { cert: cert.cert, key: cert.key } });
    const out = (await runCli("mariadb", ["-h127.0.0.1", `-P${env!.port()}`, `-u${USER}`, `-p${PASSWORD}`, `-D${DB_A}`, "--ssl", "-e", "status"])).toString();
    expect(out).to.match(/SSL:\s+Cipher in use is \S+/);
    expect(out).to.contain(`Current database:\t${DB_A}`);
  });

  it("works with the mariadb command-line client", async function () {
    this.timeout(20_000);
    env = await startMyProxy([{ listener: "my", match: { database: DB_A }, targets: [MY_TARGET] }]);
    const out = (await runCli("mariadb", ["-h127.0.0.1", `-P${env!.port()}`, `-u${USER}`, `-p${PASSWORD}`, `-D${DB_A}`, "--skip-ssl", "-N", "-e", "select database(), 6*7"])).toString();
    expect(out.trim()).to.equal(`${DB_A}\t42`);
  });
});
