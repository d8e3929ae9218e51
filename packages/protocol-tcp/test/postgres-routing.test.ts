import { expect } from "chai";
import { ResolveError, Stage } from "@switchyard/core";
import { closedPort, forEachConcurrently } from "@switchyard/test-utils";
import {
  PG_TARGET,
  errorFields,
  pgAdmin,
  pgThrough,
  rawExchange,
  startForwarder,
  startPgProxy,
  startupPacket,
  type Forwarder,
  type PgEnv,
} from "./pg-helpers.js";

const DB_A = "sy_pgroute_a";
const DB_B = "sy_pgroute_b";

describe("PostgresProtocol routing", () => {
  let env: PgEnv | undefined;
  let forwarder: Forwarder | undefined;

  before(async () => {
    for (const db of [DB_A, DB_B]) {
      await pgAdmin(`DROP DATABASE IF EXISTS ${db}`);
      await pgAdmin(`CREATE DATABASE ${db}`);
    }
  });
  after(async () => {
    for (const db of [DB_A, DB_B]) await pgAdmin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
    await forwarder?.close();
    forwarder = undefined;
  });

  it("routes by database to two different targets", async () => {
    forwarder = await startForwarder(5432);
    env = await startPgProxy([
      { name: "a", listener: "pg", match: { database: DB_A }, targets: [PG_TARGET] },
      { name: "b", listener: "pg", match: { database: "sy_pgroute_*" }, targets: [`127.0.0.1:${forwarder.port}`] },
    ]);
    const a = pgThrough(env.port(), { database: DB_A });
    await a.connect();
    expect((await a.query("select current_database() as db")).rows[0].db).to.equal(DB_A);
    await a.end();
    expect(forwarder.accepted).to.equal(0);
    const b = pgThrough(env.port(), { database: DB_B });
    await b.connect();
    expect((await b.query("select current_database() as db")).rows[0].db).to.equal(DB_B);
    await b.end();
    expect(forwarder.accepted).to.equal(1);
    expect(env.proxy.stats().routes["b"]?.total).to.equal(1);
  });

  it("routes by user and application_name, and the database defaults to the user", async () => {
    env = await startPgProxy([
      { name: "apps", listener: "pg", match: { user: "postgres", application_name: "billing-*", database: "postgres" }, targets: [PG_TARGET] },
    ]);
    // no database given: it defaults to the user name ("postgres"), which the route requires
    const c = pgThrough(env.port(), { database: undefined as unknown as string, application_name: "billing-7" });
    delete (c as unknown as { database?: string }).database;
    await c.connect();
    expect((await c.query("select current_database() as db, current_setting('application_name') as app")).rows[0]).to.deep.equal({
      db: "postgres",
      app: "billing-7",
    });
    await c.end();
    const other = pgThrough(env.port(), { database: "postgres", application_name: "reports" });
    const err = await other.connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("3D000");
  });

  it("answers 3D000 before any backend when no route matches, and closes", async () => {
    env = await startPgProxy([{ listener: "pg", match: { database: DB_A }, targets: [PG_TARGET] }]);
    const c = pgThrough(env.port(), { database: "nowhere" });
    const err = await c.connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("3D000");
    expect(err?.message).to.contain('"nowhere"');
    expect(env.proxy.stats().active).to.be.at.most(1);
  });

  it("maps a resolver's typed refusals: UNAVAILABLE 57P03, FORBIDDEN 28000", async () => {
    const refusing = {
      name: "Refusing",
      apply(proxy: import("@switchyard/core").Proxy) {
        proxy.hooks.onResolve.tap({ name: "Refusing", stage: Stage.ROUTE }, ({ key }) => {
          throw new ResolveError(key.database === "busy" ? "UNAVAILABLE" : "FORBIDDEN");
        });
      },
    };
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }], {}, {}, [refusing]);
    for (const [database, code] of [["busy", "57P03"], ["secret", "28000"]] as const) {
      const c = pgThrough(env.port(), { database });
      const err = await c.connect().then(() => undefined, (e: Error & { code?: string }) => e);
      expect(err?.code).to.equal(code);
    }
  });

  it("answers 08001 when the backend is unreachable", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${await closedPort()}`] }]);
    const c = pgThrough(env.port());
    const err = await c.connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("08001");
  });

  it("rewrites the startup per route: the virtual database tenant_7 is the shared database", async () => {
    env = await startPgProxy([
      { name: "tenants", listener: "pg", match: { database: "tenant_*" }, targets: [PG_TARGET], options: { postgres: { database: DB_A } } },
    ]);
    const c = pgThrough(env.port(), { database: "tenant_7" });
    await c.connect();
    expect((await c.query("select current_database() as db")).rows[0].db).to.equal(DB_A);
    await c.end();
  });

  it("refuses a bad startup rewrite option at construction", async () => {
    let error: unknown;
    try {
      env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET], options: { postgres: { databse: "x" } } }]);
    } catch (err) {
      error = err;
    }
    expect((error as { code?: string })?.code).to.equal("PRX_ERR_CONFIG");
    expect(String(error)).to.contain("databse");
  });

  it("answers invalid startup packets with 08P01 or 0A000 and closes", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }]);
    const tooLong = Buffer.alloc(8);
    tooLong.writeInt32BE(1_000_000, 0);
    expect(errorFields(await rawExchange(env.port(), tooLong)).C).to.equal("08P01");
    const v2 = Buffer.alloc(8);
    v2.writeInt32BE(8, 0);
    v2.writeInt32BE(0x20000, 4);
    expect(errorFields(await rawExchange(env.port(), v2)).C).to.equal("0A000");
    // the same key twice could route by one value while the server uses the other
    const twice = startupPacket([["user", "postgres"], ["database", "a"], ["database", "b"]]);
    const f = errorFields(await rawExchange(env.port(), twice));
    expect(f.C).to.equal("08P01");
    expect(f.M).to.contain("twice");
    expect(errorFields(await rawExchange(env.port(), startupPacket({ database: "x" }))).C).to.equal("28000");
    // invalid UTF-8 would route by replacement characters while the server sees other bytes
    const latin = Buffer.concat([startupPacket({ user: "postgres", database: "caf" }).subarray(0, -2), Buffer.from([0xe9, 0, 0])]);
    latin.writeInt32BE(latin.length, 0);
    expect(errorFields(await rawExchange(env.port(), latin)).M).to.contain("UTF-8");
  });

  it("answers N to GSSENCRequest and SSLRequest without listener tls, then serves the startup", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }]);
    const c = pgThrough(env.port(), { ssl: false, gssencmode: "prefer" } as never);
    await c.connect();
    expect((await c.query("select 1 as one")).rows[0].one).to.equal(1);
    await c.end();
    const req = Buffer.alloc(16);
    req.writeInt32BE(8, 0);
    req.writeInt32BE(80877104, 4);
    req.writeInt32BE(8, 8);
    req.writeInt32BE(80877103, 12);
    const s = await import("node:net").then((net) => net.connect({ host: "127.0.0.1", port: env!.port() }));
    s.on("error", () => {});
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    s.write(req);
    await new Promise((r) => setTimeout(r, 200));
    expect(Buffer.concat(got).toString()).to.equal("NN");
    s.destroy();
  });

  it("passes NegotiateProtocolVersion through: a 3.2 startup against a 3.0 server", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }]);
    const net = await import("node:net");
    const s = net.connect({ host: "127.0.0.1", port: env.port() });
    s.on("error", () => {});
    const v32 = startupPacket({ user: "postgres", database: "test" });
    v32.writeInt32BE(196610, 4);
    s.write(v32);
    let buf = Buffer.alloc(0);
    const types: string[] = [];
    for await (const chunk of s) {
      buf = Buffer.concat([buf, chunk as Buffer]);
      while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
        types.push(String.fromCharCode(buf[0]!));
        buf = buf.subarray(1 + buf.readInt32BE(1));
      }
      if (types.includes("Z") || types.includes("E")) break;
    }
    s.destroy();
    expect(types[0]).to.equal("v");
    expect(types).to.include("K");
    expect(types[types.length - 1]).to.equal("Z");
  });

  it("serves 200 clients, 40 at a time (the server allows 100 connections)", async function () {
    this.timeout(60_000);
    env = await startPgProxy([{ listener: "pg", match: { database: DB_A }, targets: [PG_TARGET] }]);
    const ids = Array.from({ length: 200 }, (_, i) => i);
    const seen: number[] = [];
    await forEachConcurrently(ids, 40, async (i) => {
      const c = pgThrough(env!.port(), { database: DB_A });
      await c.connect();
      const r = await c.query("select $1::int as n", [i]);
      seen.push(r.rows[0].n);
      await c.end();
    });
    expect(seen.sort((x, y) => x - y)).to.deep.equal(ids);
    expect(env.protocol.cancelKeyCount(env.proxy)).to.equal(0);
  });
});
