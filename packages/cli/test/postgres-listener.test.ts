import { expect } from "chai";
import pg from "pg";
import { cleanup, runCli, startCli, tmpFile } from "./helpers.js";

// The PostgreSQL server of this machine: trust authentication on 127.0.0.1:5432, database "test".
const PG_TARGET = "127.0.0.1:5432";

describe("postgres listeners in a config file (@switchyard/protocol-tcp)", () => {
  afterEach(cleanup);

  it("routes by database name to PostgreSQL; pg queries through the switchyard command", async () => {
    const file = tmpFile(
      "db.yaml",
      `listeners:
  - { name: db, protocol: postgres, host: 127.0.0.1, port: 0 }
routes:
  - { name: test-db, listener: db, match: { database: "te*" }, targets: ["${PG_TARGET}"] }
`,
    );
    expect((await runCli(["check", file])).code).to.equal(0);
    const cli = startCli(["--config", file]);
    const { db } = await cli.listening(1);

    const client = new pg.Client({ host: "127.0.0.1", port: db!, user: "postgres", database: "test" });
    await client.connect();
    try {
      const res = await client.query<{ db: string; n: number }>("SELECT current_database() AS db, 41 + 1 AS n");
      expect(res.rows).to.deep.equal([{ db: "test", n: 42 }]);
    } finally {
      await client.end();
    }

    // a database no route matches: PostgreSQL's own error shape, from the proxy
    const other = new pg.Client({ host: "127.0.0.1", port: db!, user: "postgres", database: "nothing_here" });
    other.on("error", () => {});
    const err = await other.connect().then(
      () => undefined,
      (e: Error) => e,
    );
    await other.end().catch(() => {});
    expect(err, "connect to an unrouted database").to.be.instanceOf(Error);
    expect(err!.message).to.equal('database "nothing_here" does not exist (no route)');

    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout()).to.match(/"msg":"connection\.close"/);
  });

  it("`switchyard check` knows match.database and match.user of a postgres listener, and suggests them when misspelt", async () => {
    const file = tmpFile(
      "keys.yaml",
      `listeners:
  - { name: db, protocol: postgres, host: 127.0.0.1, port: 0 }
routes:
  - { listener: db, match: { database: "app_*", user: "alice" }, targets: ["${PG_TARGET}"] }
  - { listener: db, match: { databse: "app" }, targets: ["${PG_TARGET}"] }
`,
    );
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    const lines = res.stderr.trim().split("\n").slice(1);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^routes\[1\]\.match\.databse: unknown match key "databse" \(did you mean "database"\?\): known are "application_name", "clientIp", "clientSan", "clientSubject", "database", "host", "method", "path", "sni", "user"/);
  });
});
