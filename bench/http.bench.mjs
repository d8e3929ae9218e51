// HTTP reverse proxying: req/s, p50 and p99 with wrk -t1 -c64 (autocannon when wrk is missing),
// 12-byte and 64 KiB responses, against the backend directly, Switchyard (HttpProtocol only),
// Switchyard with plugin-headers + plugin-retry, node-http-proxy (keep-alive agent),
// @fastify/http-proxy, nginx (1 worker), HAProxy (1 thread, http-reuse always) and a bare Node `net` pipe that does no HTTP at all (the
// floor of what Node itself costs per request: the issue's "what Node itself can do"). Every proxy, the backend and the load generator are
// separate processes on 127.0.0.1. Each target is measured BENCH_HTTP_ROUNDS times, the rounds
// interleaved across targets so that a slow spell of the shared machine hits every target alike;
// the median round is reported. Env: BENCH_HTTP_SECONDS (5), BENCH_HTTP_ROUNDS (3), BENCH_HTTP_CONNS (64).
import { execFileSync } from "node:child_process";
import { startServer, table, writeResult, met, median, treeStat, MALLOC_TUNABLES } from "./lib/proc.mjs";
import { ensureTools, startHaproxy, startNginx } from "./http-peers.mjs";
import { historyMarkdown, readHistory, recordRun } from "./lib/history.mjs";

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 3);
const CONNS = Number(process.env.BENCH_HTTP_CONNS ?? 64);
const out = [];
const log = (s = "") => {
  console.log(s);
  out.push(s);
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");

const tools = ensureTools();

function parseMs(s) {
  const m = /([\d.]+)(us|ms|s)/.exec(s);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

function runWrk(url, seconds) {
  // bash's `times` prints the CPU its children (wrk) used: the load generator's share of the cores
  const text = execFileSync("bash", ["-c", 'wrk "$@" && times', "wrk", "-t1", `-c${CONNS}`, `-d${seconds}s`, "--latency", url], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  const times = [...text.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)].at(-1);
  const loadCpu = times ? Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]) : NaN;
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const p50 = parseMs(/\s50%\s+(\S+)/.exec(text)?.[1] ?? "");
  const p99 = parseMs(/\s99%\s+(\S+)/.exec(text)?.[1] ?? "");
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? "0";
  const sock = /Socket errors: (.*)/.exec(text)?.[1];
  return { rps, p50, p99, errors: Number(errors), sock, loadCpu, requests };
}

function runAutocannon(url, seconds) {
  const bin = new URL("../node_modules/.bin/autocannon", import.meta.url).pathname;
  const text = execFileSync(bin, ["-j", "-c", String(CONNS), "-d", String(seconds), url], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  const j = JSON.parse(text);
  return { rps: j.requests.average, p50: j.latency.p50, p99: j.latency.p99, errors: j.non2xx, sock: undefined, loadCpu: NaN, requests: j.requests.total };
}

const loadgen = tools.wrk ? runWrk : runAutocannon;
/** one run against a target, with the CPU µs per request of its proxy process(es), the backend and the load generator */
function measure(target, path, seconds) {
  const before = [treeStat(target.pid), treeStat(backend.child.pid)];
  const r = loadgen(`http://127.0.0.1:${target.port}${path}`, seconds);
  const after = [treeStat(target.pid), treeStat(backend.child.pid)];
  const us = (s) => (s * 1e6) / r.requests;
  return {
    ...r,
    proxyUs: us(after[0].cpu - before[0].cpu),
    proxyFaults: (after[0].faults - before[0].faults) / r.requests,
    backendUs: us(after[1].cpu - before[1].cpu),
    loadUs: us(r.loadCpu),
  };
}
const tool = tools.wrk ? `wrk -t1 -c${CONNS} -d${SECONDS}s` : `autocannon -c ${CONNS} -d ${SECONDS}`;

const backend = await startServer("../http-backend.mjs");
const servers = { direct: { port: backend.port, pid: undefined, stop: async () => {} } };
const notes = [];
async function tryStart(name, fn) {
  try {
    servers[name] = await fn();
  } catch (err) {
    notes.push(`${name}: skipped (${err.message.split("\n")[0]})`);
  }
}
const proxyProc = (kind, env) => async () => {
  const h = await startServer("../http-proxy.mjs", [kind, String(backend.port)], env ? { env } : undefined);
  return { port: h.port, pid: h.child.pid, stop: () => h.stop() };
};
await tryStart("switchyard", proxyProc("switchyard"));
await tryStart("switchyard+plugins", proxyProc("switchyard-plugins"));
// the same bare proxy with glibc's default malloc settings: what the launcher's tunables are worth
if (MALLOC_TUNABLES) await tryStart("switchyard, malloc defaults", proxyProc("switchyard", { GLIBC_TUNABLES: "" }));
// no HTTP parsing, one backend connection per client connection: what Node's sockets alone cost
await tryStart("bare node pipe (no HTTP)", async () => {
  const h = await startServer("./pipe-proxy.mjs", ["127.0.0.1", String(backend.port)]);
  return { port: h.port, pid: h.child.pid, stop: () => h.stop() };
});
await tryStart("node-http-proxy", proxyProc("node-http-proxy"));
await tryStart("fastify-http-proxy", proxyProc("fastify"));
if (tools.nginx) await tryStart("nginx", () => startNginx(backend.port));
else notes.push("nginx: skipped (not installed and apt-get unavailable)");
if (tools.haproxy) await tryStart("haproxy", () => startHaproxy(backend.port));
else notes.push("haproxy: skipped (not installed and apt-get unavailable)");

const rounds = {};
try {
  for (const [size, path] of [["12 B", "/"], ["64 KiB", "/big"]]) {
    for (const s of Object.values(servers)) measure(s, path, 1); // warm-up (JIT, pools)
    const entries = Object.entries(servers);
    for (let round = 1; round <= ROUNDS; round++) {
      // each round starts one target later, so no target always runs right after the same other
      const k = (round - 1) % entries.length;
      for (const [name, s] of [...entries.slice(k), ...entries.slice(0, k)]) {
        const r = measure(s, path, SECONDS);
        ((rounds[size] ??= {})[name] ??= []).push(r);
        console.error(`  ${size} ${name} round ${round}: ${fmt(r.rps)} req/s p50 ${fmt(r.p50, 2)} ms p99 ${fmt(r.p99, 2)} ms${r.errors ? ` non-2xx ${r.errors}` : ""}${r.sock ? ` socket errors: ${r.sock}` : ""}`);
      }
    }
  }
} finally {
  for (const s of Object.values(servers)) await s.stop();
  await backend.stop();
}

log("## HTTP (L7 reverse proxying)");
log();
log(`\`${tool}\` per run, ${ROUNDS} rounds interleaved across targets, each round starting one target later (after a 1 s warm-up each); req/s, p50 and p99 are the medians of the rounds. One keep-alive backend (node:http, Content-Length responses).`);
log("Backend, every proxy and the load generator are separate processes on 127.0.0.1; nginx runs one worker with an upstream keep-alive pool of 64; HAProxy runs one thread with `http-reuse always`.");
log(
  MALLOC_TUNABLES
    ? `Every Node process (backend, Switchyard, node-http-proxy, fastify) runs with \`GLIBC_TUNABLES=${MALLOC_TUNABLES}\`, the setting the \`switchyard\` command applies (BENCH_MALLOC=default: glibc's defaults). "proxy faults/req" is the proxy's minor page faults per request.`
    : "Every Node process runs with glibc's default malloc settings (BENCH_MALLOC=default). \"proxy faults/req\" is the proxy's minor page faults per request.",
);
log("\"bare node pipe\" is bench/lib/pipe-proxy.mjs: `net.createServer` + `net.connect` + `pipe()` both ways, no HTTP parsing, one backend connection per client connection — the floor of what Node's sockets cost per request.");
log("Switchyard is `new Proxy({ listeners: [{ protocol: \"http\" }], plugins: [new HttpProtocol()] })` (bench/http-proxy.mjs); \"+plugins\" adds HeadersPlugin and RetryPlugin with default options.");
log();
const results = Object.fromEntries(
  Object.entries(rounds).map(([size, byName]) => [
    size,
    Object.fromEntries(
      Object.entries(byName).map(([name, rs]) => [
        name,
        {
          rps: median(rs.map((r) => r.rps)),
          p50: median(rs.map((r) => r.p50)),
          p99: median(rs.map((r) => r.p99)),
          runs: rs.map((r) => r.rps),
          proxyUs: median(rs.map((r) => r.proxyUs)),
          proxyFaults: median(rs.map((r) => r.proxyFaults)),
          backendUs: median(rs.map((r) => r.backendUs)),
          loadUs: median(rs.map((r) => r.loadUs)),
        },
      ]),
    ),
  ]),
);
const verdicts = {};
for (const [size, rows] of Object.entries(results)) {
  const base = rows["switchyard"]?.rps;
  const nhp = rows["node-http-proxy"]?.rps;
  const ngx = rows["nginx"];
  log(`### ${size} responses`);
  log();
  log(
    table(
      ["target", "req/s", "p50 ms", "p99 ms", "vs direct", "Switchyard ×", "proxy CPU µs/req", "proxy faults/req", "backend µs/req", "wrk µs/req", "req/s every round"],
      Object.entries(rows).map(([name, r]) => [
        name,
        fmt(r.rps),
        fmt(r.p50, 2),
        fmt(r.p99, 2),
        fmt(r.rps / rows.direct.rps, 2),
        name === "switchyard" || !base ? "" : fmt(base / r.rps, 2),
        name === "direct" ? "" : fmt(r.proxyUs, 1),
        name === "direct" ? "" : fmt(r.proxyFaults, 2),
        fmt(r.backendUs, 1),
        fmt(r.loadUs, 1),
        r.runs.map((x) => fmt(x)).join(" / "),
      ]),
    ),
  );
  log();
  if (rows.direct) {
    const d = rows.direct;
    log(`- machine state: the direct runs kept ${fmt(((d.backendUs + d.loadUs) * d.rps) / 1e6, 2)} cores busy (backend + wrk); on this 2-core VM a figure well below 2 means the run did not get both cores, which favours the target using the least CPU per request (nginx)`);
  }
  if (base) {
    const checks = [];
    if (nhp) {
      checks.push(`Switchyard / node-http-proxy = **${fmt(base / nhp, 2)}** (≥ 3: ${met(base / nhp >= 3)})`);
      const sy = rows.switchyard;
      const n = rows["node-http-proxy"];
      checks.push(
        `proxy CPU per request, node-http-proxy / Switchyard = ${fmt(n.proxyUs / sy.proxyUs, 2)}; all three processes per request: Switchyard ${fmt(sy.proxyUs + sy.backendUs + sy.loadUs, 0)} µs (${fmt(((sy.proxyUs + sy.backendUs + sy.loadUs) * sy.rps) / 1e6, 2)} cores busy), node-http-proxy ${fmt(n.proxyUs + n.backendUs + n.loadUs, 0)} µs (${fmt(((n.proxyUs + n.backendUs + n.loadUs) * n.rps) / 1e6, 2)} cores; its proxy alone ${fmt((n.proxyUs * n.rps) / 1e6, 2)})`,
      );
    }
    if (nhp && rows.direct) checks.push(`3× node-http-proxy would be ${fmt(3 * nhp)} req/s, ${fmt((3 * nhp) / rows.direct.rps, 2)} of the backend's own req/s without any proxy${ngx ? ` (nginx reaches ${fmt(ngx.rps / rows.direct.rps, 2)})` : ""}`);
    const dflt = rows["switchyard, malloc defaults"];
    if (dflt) checks.push(`Switchyard with glibc's default malloc settings: ${fmt(dflt.rps)} req/s (${fmt(dflt.rps / base, 2)} of the tuned process), ${fmt(dflt.proxyUs, 1)} µs CPU and ${fmt(dflt.proxyFaults, 2)} page faults per request`);
    if (ngx) {
      checks.push(`Switchyard / nginx = **${fmt(base / ngx.rps, 2)}** (≥ 0.8: ${met(base / ngx.rps >= 0.8)})`);
      checks.push(`p99 Switchyard / nginx = **${fmt(rows.switchyard.p99 / ngx.p99, 2)}** (≤ 1.5: ${met(rows.switchyard.p99 / ngx.p99 <= 1.5)})`);
    }
    const hap = rows["haproxy"];
    if (hap) checks.push(`Switchyard / HAProxy = ${fmt(base / hap.rps, 2)} in req/s; proxy CPU per request ${fmt(rows.switchyard.proxyUs, 1)} against HAProxy's ${fmt(hap.proxyUs, 1)} µs (${fmt(rows.switchyard.proxyUs / hap.proxyUs, 2)}×)`);
    const pipe = rows["bare node pipe (no HTTP)"];
    if (pipe) checks.push(`Switchyard / bare Node pipe = ${fmt(base / pipe.rps, 2)} in req/s; proxy CPU per request ${fmt(rows.switchyard.proxyUs, 1)} against the pipe's ${fmt(pipe.proxyUs, 1)} µs (${fmt(rows.switchyard.proxyUs / pipe.proxyUs, 2)}×)${ngx ? ` and nginx's ${fmt(ngx.proxyUs, 1)} µs` : ""}`);
    const pl = rows["switchyard+plugins"]?.rps;
    if (pl) checks.push(`with plugin-headers + plugin-retry = **${fmt(pl / base, 2)}** of bare (≥ 0.9: ${met(pl / base >= 0.9)})`);
    if (ngx && nhp) checks.push(`for comparison, nginx / node-http-proxy = ${fmt(ngx.rps / nhp, 2)}`);
    verdicts[size] = {
      nhp: nhp ? base / nhp : undefined,
      nginx: ngx ? base / ngx.rps : undefined,
      p99: ngx ? rows.switchyard.p99 / ngx.p99 : undefined,
      plugins: pl ? pl / base : undefined,
      cpu: nhp ? rows["node-http-proxy"].proxyUs / rows.switchyard.proxyUs : undefined,
      nginxNhp: ngx && nhp ? ngx.rps / nhp : undefined,
      pipe: pipe ? base / pipe.rps : undefined,
      haproxyCpu: hap ? rows.switchyard.proxyUs / hap.proxyUs : undefined,
    };
    for (const c of checks) log(`- ${c}`);
    log();
  }
}
for (const n of notes) log(`- ${n}`);
log();
if (Object.keys(verdicts).length > 0) {
  recordRun({ date: new Date().toISOString(), tool, rounds: ROUNDS, seconds: SECONDS, order: "rotating", sizes: verdicts });
  log("### Every recorded run");
  log();
  log("One row per run of this bench on this machine (bench/results/http-history.jsonl; a run appends its row). The VM's state moves node-http-proxy's and nginx's req/s from run to run more than it moves Switchyard's CPU per request, so a target is judged here by how often it is met, not by one run.");
  log();
  log(historyMarkdown(readHistory()));
  log();
}
log("Where the time goes (Switchyard, 12 B, `node --cpu-prof` under the same wrk load, self time): ~32% `writev` (response head + body to the client, corked into one syscall), ~21% `writeLatin1String` (the request head written upstream — the syscall is attributed to it), ~29% idle (the proxy shares the 2 cores with wrk and the backend), ~2% GC; all JavaScript of ours — head parsing, validation, serialization, routing, pooling — is under 10%. The proxy is syscall-bound: four per request (read client, write upstream, read upstream, write client), the same as nginx.");
log();
log("The same with `perf record -e cpu-clock -g` on the proxy process (node `--perf-basic-prof`; kernel frames included, which `--cpu-prof` folds into the syscall's JS caller), 2026-11-23: at 12 B, 41% kernel (TCP send/receive on loopback, including the peer's receive path run in our `write`), 34% V8 runtime, builtins and node's C++ (JS↔C++ transitions per callback, inline caches, allocation), 20% JIT'd JavaScript of which 11% ours (framer ~5%) and 5% node's streams, 7% malloc/libc. At 64 KiB, 61% kernel (copying the body in and out, `_copy_to_iter` + `_copy_from_iter`, alone 14%), 22% V8/node C++, 12% JavaScript (ours ~6%), 4% malloc. Syscalls per request (`perf stat -e 'syscalls:sys_enter_*'`): 12 B 2 reads + 1 write + 1 writev; 64 KiB 3 reads + 1 write + 1 writev.");
log();
log("Profile of 2026-12-03 (`perf record -F 2000 -g` on the proxy process under wrk -c64, 12 B, node `--perf-basic-prof`), after upstream sockets moved to Node's `onread` (one shared read buffer, no readable stream per upstream read; protocol-http README, \"Upstream reads\"): 46% kernel, of which 17% is the VM's `pvm_irq_enable` (interrupts re-enabled after loopback delivery), 30% node's C++, 17% JIT'd JavaScript, 7% libc. Inclusive, the two write syscalls (request head up, response `writev` down) take 38%; our framer (http-parser-js states and our head parsing) about 5%, the largest piece of our code. A ping-pong micro-bench put an `onread` read at ~2.3 µs less CPU than a stream read; one latin1 write of head and small body instead of cork + two writes + uncork made no difference.");
log();
log("Page faults (found 2026-11-23): a minor page fault costs 14–18 µs on this VM (a C loop that mmaps 64 KiB, touches each page and unmaps it), roughly a hundred times a bare-metal fault. Node allocates a 64 KiB buffer per socket read (shrunk to what was read) and frees it when the GC collects it; with glibc's default thresholds the free top of the heap is handed back to the kernel as soon as 128 KiB of it is free, so a busy proxy keeps regrowing into pages that fault again. How often depends on the heap's layout, so two processes of the same build differed — the earlier runs' 'bare proxy slower than with plugins at 64 KiB' was just that (1–10 faults per 64 KiB response; ~0.05 at 12 B). `glibc.malloc.trim_threshold=64 MiB` and `mmap_threshold=4 MiB`, which the `switchyard` command sets, bring it to ~0.05–0.1 per response. Every Node process of this bench gets the same setting, the peers included; the \"malloc defaults\" arm shows what it is worth to Switchyard in this run. nginx allocates its buffers once and does not fault per request.");
log();
log("Also measured on 2026-11-23, not applied: (1) allocation — V8's sampling heap profiler, counting collected objects too, saw ~7.7 KB allocated per 12 B request, about a third of it ours (the response head string, header pairs, the regex matches of the request and status lines, the exchange) and the rest Node's: stream write requests and buffering, read callbacks, and a Map that Node 20 allocates every time it drains the nextTick queue (`processPromiseRejections`). Scavenges take ~1 ms every ~35 ms (~3% of the time); a larger young generation (`--min-semi-space-size=16/64`) did not change CPU per request. (2) `node --single-threaded-gc`: +3–8% req/s in three paired runs on this 2-core VM (CPU per request −1 to −9%, p99 unchanged within noise) — GC helper threads compete with wrk and the backend for the two cores; on a machine with spare cores they shorten pauses instead, so the launcher does not set it.");
log();
log("Why the req/s ratio to node-http-proxy trails its CPU ratio: node-http-proxy is bound by its own single thread (its proxy process alone keeps one core busy, the machine's second core is partly idle), while Switchyard, the backend and wrk together keep both cores busy — the backend's and wrk's CPU per request (roughly the same behind any proxy) is then part of every Switchyard request. On this 2-core machine Switchyard's req/s is about 2 cores / (proxy + backend + wrk µs per request); the CPU columns above show each part.");
log();
log("Plugin overhead (HeadersPlugin + RetryPlugin vs bare; `node --cpu-prof` of both proxy processes under `BENCH_HTTP_PROF=/tmp/prof node bench/http-plugins.bench.mjs`, which alternates 5 rounds of wrk -t1 -c64 per size and prints the medians). Before the fix the tapped path cost 0.77× (12 B) and 0.56× (64 KiB): (1) both hooks ran through `hook.promise()`, so the response head was written in a later microtask, outside the cork of the upstream read — head and body slices left in separate `write` syscalls (`writeLatin1String` + `writeBuffer` instead of one `writev`), and at 64 KiB every held chunk was its own syscall; (2) RetryPlugin's `onRequest` was a `tapPromise`, forcing the promise path for every request; (3) plugin-headers copied the hop-by-hop Set and scanned the header list once per `setHeader` (with the first two fixed, GC was still 12% of busy time vs 5% bare). Now both hooks run with `callAsync` (synchronous when every tap is sync, so the tapped path writes exactly like the untapped one, one `writev` per response), RetryPlugin taps `onRequest` synchronously (a body to buffer is awaited by the protocol), and plugin-headers edits X-Forwarded-* in one pass without copying sets. What is left of the gap is the typed messages (header pairs built from and back to flat arrays, HttpRequest/HttpResponse objects) and the plugins' own header work: ~5% of busy time, plus the GC it causes.");
log();
log("Where the plugin arm's cost comes from (2026-12-03, proxy CPU µs per 12 B request, median of 9 rounds interleaved across separate proxy processes behind one backend): bare 48.7, a no-op tap on both hooks 51.6, RetryPlugin alone 50.2 (5 rounds), HeadersPlugin alone 58.4. Most of HeadersPlugin's share is not its code (its two taps take ~0.75 µs per request in a loop outside the proxy) but the five fields it adds (X-Forwarded-For/-Proto/-Host/-Port, Via), which the proxy then writes and the backend parses: the bare proxy with the client sending those five fields itself costs 54.0 against 47.3 in the same rounds (fifteen browser fields: about +10 µs). That is more than the fields cost to parse and write (in a loop outside the proxy the framer, analysis and serialization take ~1.3 µs more for five fields); the likely rest, not proven, is that the backend, which parses them too on the same two cores, answers slower, so each turn of the proxy's event loop carries fewer requests. So the `+plugins / bare` req/s ratio above carries extra backend work on the shared cores too; bench/http-plugins.bench.mjs has a third arm (the bare proxy, the client sending the added fields) that takes that out: 0.88–0.89 at 12 B and 0.93–0.96 at 64 KiB in two runs that day.");
writeResult("http", out.join("\n"));
