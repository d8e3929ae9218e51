// `pnpm soak` (= pnpm build && node bench/soak.mjs): long mixed, abusive traffic through one
// Switchyard process, proving it leaks no connection, file descriptor or memory. Not part of
// `pnpm test` or `pnpm bench`. Processes (each its own node): the backends (bench/lib/soak-backend.mjs),
// the proxy (bench/lib/soak-proxy.mjs, --expose-gc), a load generator per phase (bench/lib/soak-load.mjs).
// Phases: baseline sample → warm-up load → settle → sample → SOAK_SECONDS of load, sampled every
// 5 s → settle (≤ 10 s) → final sample → a final GET and echo. Prints PASS/FAIL, exits 0/1 and
// writes bench/results/soak.md.
// Env: SOAK_SECONDS (120), SOAK_CONNS (64), SOAK_WARMUP_SECONDS (15), SOAK_SEED (1);
// BENCH_MALLOC=default runs every process with glibc's default malloc settings (bench/lib/proc.mjs).
import http from "node:http";
import net from "node:net";
import { startNode, here, table, writeResult, machine, met, MALLOC_TUNABLES } from "./lib/proc.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 120);
const CONNS = Number(process.env.SOAK_CONNS ?? 64);
const WARMUP = Number(process.env.SOAK_WARMUP_SECONDS ?? 15);
const SEED = Number(process.env.SOAK_SEED ?? 1);
const SAMPLE_MS = 5000;
const SETTLE_MS = 10_000;
const FD_SLACK = 5;
const RSS_BOUND = 30 * 2 ** 20;
const HEAP_BOUND = 4 * 2 ** 20;

const MiB = (b) => (b / 2 ** 20).toFixed(1);
const signed = (b) => `${b >= 0 ? "+" : ""}${MiB(b)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const elapsed = () => ((Date.now() - t0) / 1000).toFixed(0);
const log = (s) => console.log(`[soak ${elapsed().padStart(4)} s] ${s}`);

const backend = startNode(here("./soak-backend.mjs"));
const echoPort = (await backend.next("echo", 15_000)).port;
const httpPort = (await backend.next("ready", 15_000)).port;
const proxy = startNode(here("./soak-proxy.mjs"), [String(httpPort), String(echoPort)], { flags: ["--expose-gc"] });
let crash;
proxy.child.once("exit", (code, sig) => (crash = `proxy exited (${code ?? sig}) at ${elapsed()} s`));
const L = await proxy.next("listeners", 15_000);
await proxy.next("ready", 15_000);
log(`backend http :${httpPort} echo :${echoPort}; proxy web :${L.web} echo :${L.echo}; ${SECONDS} s × ${CONNS} conns, warm-up ${WARMUP} s, seed ${SEED}`);

const samples = [];
/** one sample: the proxy after forced GCs (rss, heap, stats, fds, pools) and the backend's open connections */
async function sample(phase) {
  proxy.send({ type: "rss" });
  backend.send({ type: "rss" });
  const [p, b] = await Promise.all([proxy.next("rss", 15_000), backend.next("rss", 15_000)]);
  const s = p.stats;
  return {
    phase, t: elapsed(), rss: p.rss, heapUsed: p.heapUsed, external: p.external, active: s.proxy.active, total: s.proxy.total,
    fds: s.fds, handles: s.handles, poolOpen: s.poolOpen, poolIdle: s.poolIdle, backendConns: b.stats.http + b.stats.echo,
    listeners: s.proxy.listeners, closeReasons: s.proxy.closeReasons, upstreamErrors: s.upstreamErrors,
  };
}
const row = (x) => [x.phase, x.t, MiB(x.rss), MiB(x.heapUsed), MiB(x.external), x.active, x.fds, `${x.poolOpen} / ${x.poolIdle}`, x.backendConns, x.total];
const show = (x) => log(`${x.phase}: rss ${MiB(x.rss)} MiB heap ${MiB(x.heapUsed)} MiB active ${x.active} fds ${x.fds} pool ${x.poolOpen}/${x.poolIdle} backend conns ${x.backendConns} total ${x.total}`);

/** runs one load generator for `seconds`, sampling the proxy every SAMPLE_MS meanwhile */
async function runLoad(phase, seconds) {
  const gen = startNode(here("./soak-load.mjs"), [JSON.stringify({ web: L.web, echo: L.echo, seconds, conns: CONNS, seed: SEED + phase.length, headersTimeout: L.options.http.headersTimeout, tcpIdle: L.options.tcp.idle })]);
  let done = false;
  const result = gen.next("result", (seconds + 60) * 1000).then(
    (r) => r,
    (e) => ({ error: e.message }),
  );
  result.then(() => (done = true));
  while (!done && !crash) {
    await Promise.race([sleep(SAMPLE_MS), result]);
    if (!done && !crash) samples.push(await sample(phase)), show(samples.at(-1));
  }
  const r = await result;
  await gen.stop();
  return r;
}

/** waits until nothing is open any more (proxy connections, pooled upstream sockets, backend connections) */
async function settle() {
  const start = Date.now();
  for (;;) {
    const s = await sample("settling");
    const quiet = s.active === 0 && s.poolOpen === 0 && s.backendConns === 0;
    if (quiet || Date.now() - start >= SETTLE_MS) return { ms: Date.now() - start, quiet };
    await sleep(250);
  }
}

function finalGet() {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port: L.web, path: "/", agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("error", (e) => resolve(`error ${e.code}`));
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 && body === "hello world!" ? "ok" : `${res.statusCode} ${JSON.stringify(body)}`));
    });
    req.on("error", (e) => resolve(`error ${e.code ?? e.message}`));
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}
function finalEcho() {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port: L.echo });
    s.on("error", (e) => resolve(`error ${e.code}`));
    s.setTimeout(5000, () => s.destroy(new Error("timeout")));
    let got = "";
    s.on("data", (d) => (got += d) === "soak-ping" && (resolve("ok"), s.end()));
    s.on("close", () => resolve(`closed after ${JSON.stringify(got)}`));
    s.write("soak-ping");
  });
}

const phases = {};
let baseline, warm, final, get = "not run", echo = "not run";
try {
  baseline = await sample("baseline");
  show(baseline);
  phases.warm = { load: await runLoad("warm-up", WARMUP) };
  if (!crash) phases.warm.settle = await settle();
  if (!crash) show((warm = { ...(await sample("after warm-up")) }));
  if (!crash) phases.main = { load: await runLoad("soak", SECONDS) };
  if (!crash) phases.main.settle = await settle();
  if (!crash) await sample("gc");
  if (!crash) show((final = await sample("final")));
  if (!crash) [get, echo] = await Promise.all([finalGet(), finalEcho()]);
} catch (e) {
  crash ??= `driver: ${e.message}`;
}
await sleep(100); // an exit right after the final requests
const alive = proxy.child.exitCode === null && proxy.child.signalCode === null;
const crashed = crash; // before our own stop makes the proxy exit
await proxy.stop();
await backend.stop();

// ---- verdict
const soakSamples = samples.filter((s) => s.phase === "soak");
const third = soakSamples[Math.floor(soakSamples.length / 3)];
const last = soakSamples.at(-1);
const failCount = (r) => Object.values(r?.counts ?? {}).reduce((n, c) => n + Object.entries(c).reduce((m, [k, v]) => m + (k.startsWith("FAIL") ? v : 0), 0), 0);
const fails = failCount(phases.warm?.load) + failCount(phases.main?.load);
const loadErrors = [phases.warm?.load?.error, phases.main?.load?.error].filter(Boolean);
const ok = (x) => x !== undefined;
const criteria = [
  ["proxy alive all along, answers a final GET and a TCP echo", "yes", crashed ?? `alive ${alive}, GET ${get}, echo ${echo}`, !crashed && alive && get === "ok" && echo === "ok"],
  ["active proxy connections after the run (settled within 10 s)", "0", ok(final) ? `${final.active} (settled in ${phases.main.settle.ms} ms: ${phases.main.settle.quiet})` : "n/a", final?.active === 0],
  ["open fds: final vs baseline", `≤ +${FD_SLACK}`, ok(final) ? `${baseline.fds} → ${final.fds} (${final.fds - baseline.fds >= 0 ? "+" : ""}${final.fds - baseline.fds})` : "n/a", final?.fds <= baseline?.fds + FD_SLACK],
  ["pooled upstream sockets / backend connections after the run", "0 / 0", ok(final) ? `${final.poolOpen} / ${final.backendConns}` : "n/a", final?.poolOpen === 0 && final?.backendConns === 0],
  ["RSS: final vs after warm-up (both idle, after GCs)", `≤ +${MiB(RSS_BOUND)} MiB`, ok(final) ? `${MiB(warm.rss)} → ${MiB(final.rss)} MiB (${signed(final.rss - warm.rss)})` : "n/a", final?.rss - warm?.rss <= RSS_BOUND],
  ["heapUsed: final vs after warm-up (both idle, after GCs)", `≤ +${MiB(HEAP_BOUND)} MiB`, ok(final) ? `${MiB(warm.heapUsed)} → ${MiB(final.heapUsed)} MiB (${signed(final.heapUsed - warm.heapUsed)})` : "n/a", final?.heapUsed - warm?.heapUsed <= HEAP_BOUND],
  ["unexpected outcomes (FAIL:* below) and load generator errors", "0", `${fails}${loadErrors.length ? `; ${loadErrors.join("; ")}` : ""}`, fails === 0 && loadErrors.length === 0 && ok(phases.main?.load?.counts)],
];
const pass = criteria.every((c) => c[3] === true);

// ---- report
const m = machine();
const out = [];
const w = (s = "") => out.push(s);
w("## Soak: mixed, abusive traffic (`pnpm soak`)");
w();
w(`${m.date}, node ${m.node}, ${m.nproc} CPUs (${m.cpu}). ${SECONDS} s of load after a ${WARMUP} s warm-up, ${CONNS} concurrent client loops (${Math.max(1, Math.round(CONNS / 8))} of them slow: slowloris, paused readers, idle TCP), seed ${SEED}. `
  + `Backend, proxy and load generator are separate processes on 127.0.0.1; the proxy runs with \`--expose-gc\` and ${MALLOC_TUNABLES ? `\`GLIBC_TUNABLES=${MALLOC_TUNABLES}\` (as the \`switchyard\` command)` : "glibc's default malloc settings"}.`);
w();
w(`Proxy options: HttpProtocol \`${JSON.stringify(L.options.http)}\`, web route \`${JSON.stringify(L.options.route)}\`, tcp listener timeouts \`${JSON.stringify(L.options.tcp)}\`.`);
w();
w(`### Result: ${pass ? "PASS" : "**FAIL**"}`);
w();
w(table(["criterion", "bound", "measured", ""], criteria.map(([a, b, c, d]) => [a, b, String(c), met(d === true)])));
w();
const runConns = final && warm ? final.total - warm.total : NaN;
const perConn = (b) => (Number.isFinite(runConns) && runConns > 0 ? `${(b / runConns).toFixed(0)} B` : "n/a");
w("Bounds: pooled upstream sockets idle for 2 s are closed (`pool.idleTimeout`), so after the settle none may remain and the fd count must return to the baseline; the +5 covers fds the runtime opens lazily (no allowance for pooled sockets is needed). " +
  `RSS is compared between two idle points after forced GCs, the second after the same mix ran ${(SECONDS / WARMUP).toFixed(0)}× longer. The allocator keeps freed memory (up to 64 MiB with the tunables above) and V8 keeps grown heap pages, so idle RSS follows the high-water mark and moves by some MiB with the peak concurrency; ` +
  `+30 MiB allows for that, and is still ${perConn(RSS_BOUND)} per proxied connection of this run (${runConns} connections): leaking any socket, buffer or session per connection would exceed it. ` +
  `The idle heap after GC is what the proxy keeps beyond its connections (framer cache, stats, compiled code); +4 MiB is ${perConn(HEAP_BOUND)} per connection.`);
w();
if (third && last) {
  const span = (Number(last.t) - Number(third.t)) / 60;
  w(`heapUsed under load (after GCs) from the sample at one third of the run (${third.t} s) to the last (${last.t} s): ${MiB(third.heapUsed)} → ${MiB(last.heapUsed)} MiB (${signed(last.heapUsed - third.heapUsed)}, ${span > 0 ? (((last.heapUsed - third.heapUsed) / 2 ** 20) / span).toFixed(2) : "n/a"} MiB/min); RSS ${MiB(third.rss)} → ${MiB(last.rss)} MiB.`);
  w();
}
w("### Samples (proxy process after forced GCs; t in s since the start)");
w();
const shown = [baseline, ...samples.filter((s) => s.phase !== "settling"), warm, final].filter(Boolean);
w(table(["phase", "t", "RSS MiB", "heapUsed MiB", "external MiB", "active conns", "fds", "pool open / idle", "backend conns", "conns so far"], [...new Set(shown)].sort((a, b) => a.t - b.t).map(row)));
w();
for (const [name, ph] of Object.entries(phases)) {
  const r = ph.load;
  if (!r?.counts) continue;
  const runs = Object.values(r.counts).reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0);
  w(`### Traffic, ${name === "warm" ? "warm-up" : "soak"}: ${runs} scenarios in ${(r.ms / 1000).toFixed(0)} s, ${r.requests} HTTP requests sent, ${MiB(r.echoed)} MiB echoed${ph.settle ? `; settled in ${ph.settle.ms} ms` : ""}`);
  w();
  w(table(["scenario", "runs", "outcomes"], Object.entries(r.counts).sort().map(([k, c]) => [k, Object.values(c).reduce((a, b) => a + b, 0), Object.entries(c).sort().map(([o, n]) => (o.startsWith("FAIL") ? `**${o}** ${n}` : `${o} ${n}`)).join(", ")])));
  w();
  for (const f of r.failures) w(`- ${f.t.toFixed(1)} s ${f.scenario} ${f.outcome}: ${String(f.detail).split("\n")[0].slice(0, 300)}`);
  if (r.failures.length) w();
}
const end = final ?? samples.at(-1);
if (end) {
  w(`Proxy close reasons (whole run): ${Object.entries(end.closeReasons).map(([k, v]) => `${k} ${v}`).join(", ")}. Upstream errors by code: ${Object.entries(end.upstreamErrors).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}.`);
  w();
}
w("Command: `pnpm soak` (`SOAK_SECONDS`, `SOAK_CONNS`, `SOAK_WARMUP_SECONDS`, `SOAK_SEED`); not part of `pnpm test` or `pnpm bench`.");
writeResult("soak", out.join("\n"));
console.log("\n" + out.join("\n"));
console.log(`\nSOAK ${pass ? "PASS" : "FAIL"} (bench/results/soak.md)`);
process.exit(pass ? 0 : 1);
