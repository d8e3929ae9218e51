// Databases through the proxy: PostgreSQL with pgbench -S (select-only) directly, through
// Switchyard's "postgres" listener and through pgbouncer in session mode; MySQL/MariaDB with
// mysqlslap directly and through the "mysql" listener. Reports transactions (queries) per second,
// average latency and the proxy process's CPU µs per transaction, and the connection setup rate
// (a new connection per transaction: pgbench -C, mysqlslap --detach=1). Rounds interleave the
// targets. Needs the local PostgreSQL (5432) and MariaDB (3306); pgbench, pgbouncer and mysqlslap
// come from Debian packages (installed with apt-get when missing).
// Env: BENCH_DB_SECONDS (8), BENCH_DB_ROUNDS (3), BENCH_DB_CLIENTS (8).
import { execFileSync, execSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { startServer, table, writeResult, median, met, treeStat } from "./lib/proc.mjs";
import { freePort, peerHandle } from "./http-peers.mjs";

const SECONDS = Number(process.env.BENCH_DB_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_DB_ROUNDS ?? 3);
const CLIENTS = Number(process.env.BENCH_DB_CLIENTS ?? 8);
const PG_PORT = 5432;
const MY_PORT = 3306;
const DB = "sybench";
const out = [];
const log = (s = "") => {
  console.log(s);
  out.push(s);
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const have = (cmd) => {
  try {
    execSync(`command -v ${cmd} || test -x /usr/sbin/${cmd}`, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const missing = [
  ["pgbench", "postgresql-contrib"],
  ["pgbouncer", "pgbouncer"],
  ["mysqlslap", "mariadb-client"],
].filter(([c]) => !have(c));
if (missing.length) {
  console.error(`installing ${missing.map((m) => m[1]).join(", ")} with apt-get…`);
  try {
    execSync(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.map((m) => m[1]).join(" ")}`, { stdio: "ignore", timeout: 300_000 });
  } catch (err) {
    console.error(`apt-get failed: ${err.message}`);
  }
}

// ---- fixtures: a pgbench database (scale 1) and a MySQL user with a password
const psql = (sql, db = "postgres") => execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql], { encoding: "utf8" });
if (psql(`SELECT 1 FROM pg_database WHERE datname = '${DB}'`).trim() !== "1") psql(`CREATE DATABASE ${DB}`);
execFileSync("pgbench", ["-i", "-q", "-s", "1", "-h", "127.0.0.1", "-U", "postgres", DB], { stdio: "ignore" });
const mysql = (sql) => execFileSync("mysql", ["-h", "127.0.0.1", "-P", String(MY_PORT), "-u", "root", "-e", sql], { encoding: "utf8" });
mysql(`CREATE DATABASE IF NOT EXISTS ${DB}; CREATE USER IF NOT EXISTS 'sybench'@'%' IDENTIFIED BY 'sybench-pw'; GRANT ALL ON ${DB}.* TO 'sybench'@'%'; CREATE TABLE IF NOT EXISTS ${DB}.t (id INT PRIMARY KEY, v VARCHAR(32)); INSERT IGNORE INTO ${DB}.t VALUES (1, 'one');`);

// ---- pgbouncer in session mode, one process, trust auth
async function startPgbouncer() {
  const dir = mkdtempSync(join(os.tmpdir(), "sy-pgbouncer-"));
  chmodSync(dir, 0o777);
  const port = await freePort();
  writeFileSync(join(dir, "users.txt"), '"postgres" ""\n');
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    `[databases]\n* = host=127.0.0.1 port=${PG_PORT}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nunix_socket_dir =\nauth_type = trust\nauth_file = ${dir}/users.txt\npool_mode = session\nmax_client_conn = 1000\ndefault_pool_size = 100\nlogfile = ${dir}/pgbouncer.log\npidfile = ${dir}/pgbouncer.pid\nlog_connections = 0\nlog_disconnections = 0\n`,
  );
  const bin = existsSync("/usr/sbin/pgbouncer") ? "/usr/sbin/pgbouncer" : "pgbouncer";
  const args = process.getuid?.() === 0 ? ["-u", "postgres", join(dir, "pgbouncer.ini")] : [join(dir, "pgbouncer.ini")];
  const child = spawn(bin, args, { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync("psql", ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", DB, "-qAtc", "SELECT 1"], { stdio: "ignore" });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return peerHandle(child, port, dir);
}

function pgbench(port, connectEach) {
  const args = ["-S", "-n", "-c", String(CLIENTS), "-j", "2", "-T", String(SECONDS), "-h", "127.0.0.1", "-p", String(port), "-U", "postgres"];
  if (connectEach) args.push("-C");
  const text = execFileSync("pgbench", [...args, DB], { encoding: "utf8", timeout: (SECONDS + 60) * 1000 });
  return {
    tx: Number(/number of transactions actually processed: (\d+)/.exec(text)?.[1]),
    tps: Number(/tps = ([\d.]+)/.exec(text)?.[1]),
    latencyMs: Number(/latency average = ([\d.]+) ms/.exec(text)?.[1]),
  };
}

function mysqlslap(port, connectEach) {
  const queries = connectEach ? 4000 : 40000;
  const args = ["-h", "127.0.0.1", "-P", String(port), "-u", "sybench", "-psybench-pw", `--create-schema=${DB}`, `--concurrency=${CLIENTS}`, "--iterations=1", `--number-of-queries=${queries}`, "--query=SELECT v FROM t WHERE id = 1"];
  if (connectEach) args.push("--detach=1");
  const text = execFileSync("mysqlslap", args, { encoding: "utf8", timeout: 300_000 });
  const secs = Number(/Average number of seconds to run all queries: ([\d.]+)/.exec(text)?.[1]);
  return { tx: queries, tps: queries / secs, latencyMs: (secs * 1000 * CLIENTS) / queries };
}

const proxy = await startServer("./db-proxy.mjs", [String(PG_PORT), String(MY_PORT)]);
const ports = await proxy.next("ports");
const bouncer = have("pgbouncer") ? await startPgbouncer() : undefined;
const pgTargets = { direct: { port: PG_PORT }, switchyard: { port: ports.postgres, pid: proxy.child.pid }, ...(bouncer ? { "pgbouncer (session)": bouncer } : {}) };
const myTargets = { direct: { port: MY_PORT }, switchyard: { port: ports.mysql, pid: proxy.child.pid } };

function measure(kind, target, connectEach) {
  const before = target.pid ? treeStat(target.pid).cpu : NaN;
  const r = kind === "pg" ? pgbench(target.port, connectEach) : mysqlslap(target.port, connectEach);
  const cpu = target.pid ? treeStat(target.pid).cpu - before : NaN;
  return { ...r, proxyUs: (cpu * 1e6) / r.tx };
}

const results = {};
try {
  for (const [label, kind, targets, connectEach] of [
    ["PostgreSQL pgbench -S", "pg", pgTargets, false],
    ["PostgreSQL pgbench -S -C (new connection per transaction)", "pg", pgTargets, true],
    ["MySQL mysqlslap (one SELECT by primary key)", "my", myTargets, false],
    ["MySQL mysqlslap --detach=1 (new connection per query)", "my", myTargets, true],
  ]) {
    const entries = Object.entries(targets);
    for (const [, t] of entries) measure(kind, t, connectEach); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      const k = round % entries.length;
      for (const [name, t] of [...entries.slice(k), ...entries.slice(0, k)]) {
        const r = measure(kind, t, connectEach);
        ((results[label] ??= {})[name] ??= []).push(r);
        console.error(`  ${label} ${name} round ${round + 1}: ${fmt(r.tps)} tx/s, ${fmt(r.latencyMs, 3)} ms, proxy ${fmt(r.proxyUs, 1)} µs/tx`);
      }
    }
  }
} finally {
  await proxy.stop();
  await bouncer?.stop();
}

log("## Databases (PostgreSQL and MySQL routing)");
log();
log(`PostgreSQL: \`pgbench -S -n -c ${CLIENTS} -j 2 -T ${SECONDS}\` on a scale-1 database; MySQL/MariaDB: \`mysqlslap --concurrency=${CLIENTS}\` running \`SELECT v FROM t WHERE id = 1\` as a user with a password (mysql_native_password, forwarded by the proxy without knowing it). ${ROUNDS} rounds interleaved across targets, each round starting one target later; medians. Switchyard is one process with a \`postgres\` and a \`mysql\` listener (bench/lib/db-proxy.mjs) routing by database; pgbouncer runs in session mode with trust auth. "proxy CPU µs/tx" is the proxy process's user + system CPU per transaction. The database servers, pgbench/mysqlslap and the proxy share the machine's 2 cores.`);
log();
const verdicts = [];
for (const [label, byName] of Object.entries(results)) {
  const rows = Object.fromEntries(Object.entries(byName).map(([n, rs]) => [n, { tps: median(rs.map((r) => r.tps)), lat: median(rs.map((r) => r.latencyMs)), us: median(rs.map((r) => r.proxyUs)), runs: rs.map((r) => r.tps) }]));
  log(`### ${label}`);
  log();
  log(table(["target", "tx/s", "avg latency ms", "vs direct", "proxy CPU µs/tx", "tx/s every round"], Object.entries(rows).map(([n, r]) => [n, fmt(r.tps), fmt(r.lat, 3), fmt(r.tps / rows.direct.tps, 2), n === "direct" ? "" : fmt(r.us, 1), r.runs.map((x) => fmt(x)).join(" / ")])));
  log();
  const sy = rows.switchyard;
  const pb = rows["pgbouncer (session)"];
  if (label === "PostgreSQL pgbench -S") {
    verdicts.push(`PostgreSQL, ${CLIENTS} clients: Switchyard / direct TPS = **${fmt(sy.tps / rows.direct.tps, 2)}** (≥ 0.9: ${met(sy.tps / rows.direct.tps >= 0.9)})`);
    if (pb) verdicts.push(`PostgreSQL proxy CPU per transaction, Switchyard / pgbouncer = **${fmt(sy.us / pb.us, 2)}** (≤ 1: ${met(sy.us <= pb.us)}); TPS Switchyard / pgbouncer ${fmt(sy.tps / pb.tps, 2)}`);
  } else {
    verdicts.push(`${label}: Switchyard / direct = ${fmt(sy.tps / rows.direct.tps, 2)}${pb ? `, pgbouncer / direct = ${fmt(pb.tps / rows.direct.tps, 2)}; proxy CPU per transaction Switchyard / pgbouncer = ${fmt(sy.us / pb.us, 2)}` : ""}`);
  }
}
for (const v of verdicts) log(`- ${v}`);
writeResult("db", out.join("\n"));
