import { expect } from "chai";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { PG_TARGET, pgAdmin, startPgProxy, type PgEnv } from "./pg-helpers.js";

const DB = "sy_pgcopy";

/** Runs psql through the proxy with `stdin`; resolves with stdout (rejects on a non-zero exit). */
function psql(port: number, args: string[], stdin?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", `host=127.0.0.1 port=${port} user=postgres dbname=${DB}`, ...args], {
      env: { ...process.env, PGCONNECT_TIMEOUT: "10" },
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`psql exited ${code}: ${err}`))));
    child.stdin.on("error", () => {});
    child.stdin.end(stdin);
  });
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
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn("psql", ["-X", "-At", `host=127.0.0.1 port=${env!.port()} user=postgres dbname=${DB} sslmode=require`, "-c", "select 'tls-ok'", "-c", "\\conninfo"]);
      let text = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (text += d));
      child.stderr.on("data", (d: Buffer) => (err += d));
      child.on("close", (code) => (code === 0 ? resolve(text) : reject(new Error(`psql exited ${code}: ${err}`))));
    });
    expect(out).to.contain("tls-ok");
    expect(out).to.match(/SSL connection \(protocol: TLSv1\.[23]/);
  });

  it("psql gets the proxy's 3D000 for a database without a route", async () => {
    env = await startPgProxy([{ listener: "pg", match: { database: DB }, targets: [PG_TARGET] }]);
    const err = await new Promise<string>((resolve) => {
      const child = spawn("psql", ["-X", `host=127.0.0.1 port=${env!.port()} user=postgres dbname=elsewhere`, "-c", "select 1"]);
      let text = "";
      child.stderr.on("data", (d: Buffer) => (text += d));
      child.on("close", () => resolve(text));
    });
    expect(err).to.contain('database "elsewhere" does not exist');
  });
});
