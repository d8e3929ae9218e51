import { expect } from "chai";
import { createHash, randomBytes } from "node:crypto";
import { runCli, runCliResult } from "./cli-run.js";
import { PG_TARGET, pgAdmin, startPgProxy, type PgEnv } from "./pg-helpers.js";

const DB = "sy_pgcopy";

/** Runs psql through the proxy with `stdin`; resolves with stdout (rejects on a non-zero exit). */
function psql(port: number, args: string[], stdin?: Buffer): Promise<Buffer> {
  return runCli("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", `host=127.0.0.1 port=${port} user=postgres dbname=${DB}`, ...args], stdin);
}

describe("PostgresProtocol with psql and COPY", () => {
  let env: PgEnv | undefined;

  before(async () => {
    await pgAdmin(`DROP DATABASE IF EXISTS ${DB}`);
    await pgAdmin(`CREATE DATABASE ${DB}`);
  });
  after(async () => {
    await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it("moves a 48 MiB COPY in and out byte-exact (psql through the proxy)", async function () {
    this.timeout(60_000);
    env = await startPgProxy([{ listener: "pg", match: { database: DB }, targets: [PG_TARGET] }]);
    await psql(env.port(), ["-c", "CREATE TABLE t (id bigserial primary key, line text not null)"]);
    // 48 MiB of lines: 96 hex characters each (no characters COPY text format would escape)
    const lines: string[] = [];
    let size = 0;
    while (size < 48 * 1024 * 1024) {
      const line = randomBytes(48).toString("hex");
      lines.push(line);
      size += line.length + 1;
    }
    const data = Buffer.from(lines.join("\n") + "\n");
    await psql(env.port(), ["-c", "COPY t (line) FROM STDIN"], data);
    const back = await psql(env.port(), ["-c", "COPY (SELECT line FROM t ORDER BY id) TO STDOUT"]);
    expect(back.length).to.equal(data.length);
    expect(createHash("sha256").update(back).digest("hex")).to.equal(createHash("sha256").update(data).digest("hex"));
    expect(env.proxy.stats().routes).to.not.equal(undefined);
  });

  it("psql with sslmode=require: TLS terminated at the proxy", async () => {
    const { createTestCa } = await import("@switchyard/test-utils");
    const cert = createTestCa().issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
    env = await startPgProxy([{ listener: "pg", match: { database: DB }, targets: [PG_TARGET] }], { tls: { cert: cert.cert, key: cert.key } });
    const out = (await runCli("psql", ["-X", "-At", `host=127.0.0.1 port=${env!.port()} user=postgres dbname=${DB} sslmode=require`, "-c", "select 'tls-ok'", "-c", "\\conninfo"])).toString();
    expect(out).to.contain("tls-ok");
    expect(out).to.match(/SSL connection \(protocol: TLSv1\.[23]/);
  });

  it("psql gets the proxy's 3D000 for a database without a route", async () => {
    env = await startPgProxy([{ listener: "pg", match: { database: DB }, targets: [PG_TARGET] }]);
    const err = (await runCliResult("psql", ["-X", `host=127.0.0.1 port=${env!.port()} user=postgres dbname=elsewhere`, "-c", "select 1"])).stderr;
    expect(err).to.contain('database "elsewhere" does not exist');
  });
});
