// TCP: throughput, memory per idle proxied connection, connections per second.
// Direct to the backend vs a bare Node `net` pipe vs Switchyard, all in one run, loopback only.
// Every process (backend, each proxy, each load generator) is its own `node` process.
// Env: BENCH_TCP_BYTES (default 2 GiB per run), BENCH_ROUNDS (3), BENCH_IDLE_N (10000, capped by
// the fd hard limit), BENCH_MEM_ROUNDS (3), BENCH_CPS_MS (5000), BENCH_CORE (another core dist/index.js to measure).
import { execSync } from "node:child_process";
import { startServer, load, table, writeResult, median, met, MALLOC_TUNABLES } from "./lib/proc.mjs";

const HOST = "127.0.0.1";
const BYTES = Number(process.env.BENCH_TCP_BYTES ?? 2 ** 31);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CPS_MS = Number(process.env.BENCH_CPS_MS ?? 5000);
const CPS_CONCURRENCY = 32;
const MEM_ROUNDS = Number(process.env.BENCH_MEM_ROUNDS ?? 3);
const GC = { flags: ["--expose-gc"] };

// Each idle proxied connection holds two fds in the proxy (client + upstream leg).
const hardNofile = Number(execSync("bash -c 'ulimit -Hn'").toString().trim()) || 1024;
const wantIdle = Number(process.env.BENCH_IDLE_N ?? 10_000);
const IDLE_N = Math.min(wantIdle, Math.floor((hardNofile - 100) / 2));

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const out = [];
const log = (s = "") => {
  console.log(s);
  out.push(s);
};

const backend = await startServer("./backend.mjs");
const proxies = async () => ({
  pipe: await startServer("./pipe-proxy.mjs", [HOST, String(backend.port)], GC),
  switchyard: await startServer("./switchyard-proxy.mjs", [HOST, String(backend.port)], GC),
});
// memory only: the same Switchyard process with glibc's default malloc settings (the launcher's
// tunables keep freed heap instead of returning it, which shows in RSS)
const MALLOC_ARMS = MALLOC_TUNABLES ? ["switchyard, malloc defaults"] : [];
const memProxies = async () => ({
  ...(await proxies()),
  ...(MALLOC_TUNABLES
    ? { "switchyard, malloc defaults": await startServer("./switchyard-proxy.mjs", [HOST, String(backend.port)], { ...GC, env: { GLIBC_TUNABLES: "" } }) }
    : {}),
});

try {
  log("## TCP (raw L4 forwarding)");
  log();
  log("Backend, bare pipe, Switchyard and every load generator each run as their own `node` process on 127.0.0.1.");
  log("The bare pipe is `net.createServer(c => { const u = net.connect(port, host); c.pipe(u); u.pipe(c) })` (bench/lib/pipe-proxy.mjs);");
  log("Switchyard is `new Proxy({ listeners: [{ protocol: \"tcp\", ... }], routes: [{ targets: [backend] }] })` (bench/lib/switchyard-proxy.mjs).");
  if (process.env.BENCH_CORE) log(`\n**Switchyard core under test: ${process.env.BENCH_CORE}**`);
  log();

  // ---- 1. throughput
  let p = await proxies();
  const targets = { direct: backend.port, pipe: p.pipe.port, switchyard: p.switchyard.port };
  const tput = {};
  for (const conns of [1, 8]) {
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, port] of Object.entries(targets)) {
        const res = await load({ mode: "bulk", host: HOST, port, conns, bytes: BYTES, timeoutMs: 60_000 });
        ((tput[conns] ??= {})[name] ??= []).push(res.gbps);
        console.error(`  bulk ${conns} conn ${name} round ${r + 1}: ${fmt(res.gbps)} Gbit/s`);
      }
    }
  }
  log(`### Throughput: ${(BYTES / 2 ** 30).toFixed(1)} GiB client→backend per run, median of ${ROUNDS} interleaved rounds`);
  log();
  const tRows = [];
  const tputRatios = [];
  for (const conns of [1, 8]) {
    const m = Object.fromEntries(Object.entries(tput[conns]).map(([k, v]) => [k, median(v)]));
    const ratio = m.switchyard / m.pipe;
    tputRatios.push(ratio);
    tRows.push([
      String(conns),
      fmt(m.direct),
      fmt(m.pipe),
      fmt(m.switchyard),
      fmt(m.switchyard / m.direct),
      `**${fmt(ratio)}**`,
      `≥ 0.95: ${met(ratio >= 0.95)}`,
      tput[conns].switchyard.map((x) => fmt(x)).join(" / "),
    ]);
  }
  log(table(["conns", "direct Gbit/s", "bare pipe Gbit/s", "Switchyard Gbit/s", "Switchyard / direct", "Switchyard / pipe", "target", "Switchyard runs"], tRows));
  log();

  // ---- 3. connections per second (same processes)
  const cps = {};
  for (const [name, port] of Object.entries(targets)) {
    cps[name] = await load({ mode: "cps", host: HOST, port, concurrency: CPS_CONCURRENCY, durationMs: CPS_MS, timeoutMs: CPS_MS + 30_000 });
    console.error(`  cps ${name}: ${fmt(cps[name].cps, 0)}/s`);
  }
  log(`### Connections per second: connect, write 8 bytes, read 8 back, close; ${CPS_CONCURRENCY} concurrent loops for ${CPS_MS / 1000} s`);
  log();
  const cpsRatio = cps.switchyard.cps / cps.pipe.cps;
  log(
    table(
      ["path", "conn/s", "p50 ms", "p99 ms", "errors", "vs bare pipe"],
      Object.entries(cps).map(([k, v]) => [k, fmt(v.cps, 0), fmt(v.p50ms), fmt(v.p99ms), String(v.errors), fmt(v.cps / cps.pipe.cps)]),
    ),
  );
  log();
  log(`Switchyard / bare pipe = **${fmt(cpsRatio)}** (target ≥ 0.8: ${met(cpsRatio >= 0.8)})`);
  log();
  await Promise.all([p.pipe.stop(), p.switchyard.stop()]);

  // ---- 2. memory per idle proxied connection (fresh proxy processes for every round)
  // RSS growth varies by ~0.2 KB/conn between runs (page-granular heap growth), so each proxy is
  // measured MEM_ROUNDS times, interleaved, and the median round is reported.
  const runs = Object.fromEntries(["pipe", "switchyard", ...MALLOC_ARMS].map((k) => [k, []]));
  const kb = (v) => (v.after.rss - v.before.rss) / v.held / 1024;
  const heapKb = (v) => (v.after.heapUsed - v.before.heapUsed) / v.held / 1024;
  for (let r = 0; r < MEM_ROUNDS; r++) {
    p = await memProxies();
    for (const name of Object.keys(runs)) {
      const proxy = p[name];
      // warm up code paths (JIT, first allocations) so the baseline is not a cold process
      const warm = await load({ mode: "cps", host: HOST, port: proxy.port, concurrency: 8, durationMs: 300, timeoutMs: 20_000 });
      const before = await proxy.rss();
      const { startNode, here } = await import("./lib/proc.mjs");
      const gen = startNode(here("./loadgen.mjs"), [
        JSON.stringify({ mode: "idle", host: HOST, port: proxy.port, n: IDLE_N, concurrency: 64, timeoutMs: 120_000 }),
      ]);
      const held = await gen.next("held", 120_000);
      const after = await proxy.rss();
      gen.send({ type: "release" });
      await gen.next("result", 30_000);
      await gen.stop();
      const run = { before, after, held: held.held, errors: held.errors, warm: warm.conns };
      runs[name].push(run);
      console.error(`  idle ${name} round ${r + 1}: ${held.held} held, ${fmt(kb(run))} KB/conn`);
    }
    await Promise.all(Object.values(p).map((x) => x.stop()));
  }
  const mem = Object.fromEntries(
    Object.entries(runs).map(([k, v]) => [k, [...v].sort((x, y) => kb(x) - kb(y))[Math.floor((v.length - 1) / 2)]]),
  );
  log(`### Memory per idle proxied connection: ${IDLE_N} connections, each after one 8-byte round trip; median of ${MEM_ROUNDS} rounds`);
  log();
  log("RSS is the proxy process's own `process.memoryUsage().rss` after forced full GCs (`--expose-gc`), before opening and while holding.");
  if (IDLE_N < wantIdle) {
    log(`N is ${IDLE_N}, not ${wantIdle}: this machine's hard fd limit is ${hardNofile} (cannot be raised here) and each proxied connection holds 2 fds in the proxy.`);
  }
  log();
  log(
    table(
      ["proxy", "held", "RSS before MB", "RSS holding MB", "KB / conn (RSS)", "KB / conn (JS heap)", "target", "KB / conn, every round"],
      Object.entries(mem).map(([k, v]) => [
        k,
        `${v.held} (${v.errors} errors)`,
        fmt(v.before.rss / 2 ** 20, 1),
        fmt(v.after.rss / 2 ** 20, 1),
        `**${fmt(kb(v))}**`,
        fmt(heapKb(v)),
        k.startsWith("switchyard") ? `≤ 6 KB: ${met(kb(v) <= 6)}` : "",
        runs[k].map((x) => fmt(kb(x))).join(" / "),
      ]),
    ),
  );
  log();
  log(`Switchyard / bare pipe (memory) = ${fmt(kb(mem.switchyard) / kb(mem.pipe))}`);
  if (MALLOC_ARMS.length) {
    log();
    log(
      `Every Node process here runs with \`GLIBC_TUNABLES=${MALLOC_TUNABLES}\` (what the \`switchyard\` command sets; see the HTTP section, "Page faults"), except "switchyard, malloc defaults". ` +
        "The setting lets the process keep up to 64 MiB of freed heap instead of returning it to the kernel; the two Switchyard rows show what that does to idle memory in this run (on 2026-11-23: +0.37 KB per connection in one run, within the round-to-round spread in another). `SWITCHYARD_MALLOC_TUNING=off` turns it off.",
    );
  }
  log();
  log(
    "Where it goes (`node bench/tools/heap-per-conn.mjs`, a heap-snapshot diff while holding 2000 connections): " +
      "the JS heap part is the two sockets (Socket, ReadableState, WritableState, TCP wrapper and listener-table objects, ~1.5 KB) " +
      "plus the Connection object (216 B) and the client address; the relay itself adds no closure, timer or promise per connection " +
      "(shared handlers, one idle sweep per proxy). The rest of the RSS growth is native: libuv handles and malloc'd socket state, " +
      "about the same for the bare pipe. The bare pipe costs more because `stream.pipe()` attaches a set of closures and listener arrays per direction.",
  );

  log();
  log("Command: `node bench/run.mjs tcp` (or `pnpm bench` for every bench).");
  writeResult("tcp", out.join("\n"));
} finally {
  await backend.stop();
}
