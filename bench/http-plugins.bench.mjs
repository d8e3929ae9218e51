// Plugin overhead only: Switchyard bare vs Switchyard + HeadersPlugin + RetryPlugin, wrk -t1
// -c64, 12 B and 64 KiB responses, ROUNDS alternating rounds (medians; the arms take turns so
// drift on a shared 2-core machine hits all alike). A third arm sends the bare proxy the five
// headers HeadersPlugin adds (X-Forwarded-For/-Proto/-Host/-Port, Via) from the client, so the
// backend — which shares the 2 cores — parses the same requests as behind the plugins: the ratio
// against that arm is the proxy's own plugin overhead. Writes bench/results/http-plugins.md.
// Env: BENCH_HTTP_SECONDS (4), BENCH_HTTP_ROUNDS (5), BENCH_HTTP_PROF=dir (node --cpu-prof
// into dir for both proxy processes).
import { execFileSync } from "node:child_process";
import { startServer, table, writeResult, met, treeStat } from "./lib/proc.mjs";

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 5);
const PROF = process.env.BENCH_HTTP_PROF;
const flags = PROF ? ["--cpu-prof", `--cpu-prof-dir=${PROF}`] : [];

// what HeadersPlugin adds to each request with default options (the port varies; same length)
const ADDED = ["X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: 127.0.0.1:8080", "X-Forwarded-Port: 40000", "Via: 1.1 switchyard"];

/** one wrk run against a proxy: req/s, and CPU µs per request of that proxy and of the backend */
function wrk(proxy, path, seconds, extra = []) {
  const before = [treeStat(proxy.child.pid), treeStat(backend.child.pid)];
  const text = execFileSync("wrk", ["-t1", "-c64", `-d${seconds}s`, ...extra, `http://127.0.0.1:${proxy.port}${path}`], { encoding: "utf8" });
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const after = [treeStat(proxy.child.pid), treeStat(backend.child.pid)];
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]),
    proxyUs: ((after[0].cpu - before[0].cpu) * 1e6) / requests,
    proxyFaults: (after[0].faults - before[0].faults) / requests,
    backendUs: ((after[1].cpu - before[1].cpu) * 1e6) / requests,
  };
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];


const backend = await startServer("../http-backend.mjs");
const bare = await startServer("../http-proxy.mjs", ["switchyard", String(backend.port)], { flags });
const plug = await startServer("../http-proxy.mjs", ["switchyard-plugins", String(backend.port)], { flags });
const out = [];
const rows = [];
try {
  for (const [size, path] of [["12 B", "/"], ["64 KiB", "/big"]]) {
    const arms = [
      ["bare", bare, []],
      ["plugins", plug, []],
      ["bare, client sends the added headers", bare, ADDED.flatMap((h) => ["-H", h])],
    ];
    const r = Object.fromEntries(arms.map(([name]) => [name, []]));
    for (const [, s, extra] of arms) wrk(s, path, 1, extra);
    for (let i = 0; i < ROUNDS; i++) {
      const order = [...arms.slice(i % arms.length), ...arms.slice(0, i % arms.length)];
      for (const [name, s, extra] of order) r[name].push(wrk(s, path, SECONDS, extra));
    }
    const med = (k) => Object.fromEntries(Object.entries(r).map(([arm, v]) => [arm, median(v.map((x) => x[k]))]));
    const m = med("rps");
    const proxyUs = med("proxyUs");
    const backendUs = med("backendUs");
    const faults = med("proxyFaults");
    const raw = m.plugins / m.bare;
    const own = m.plugins / m["bare, client sends the added headers"];
    const cpu = (arm) => `${proxyUs[arm].toFixed(1)} / ${backendUs[arm].toFixed(1)}`;
    rows.push([
      size,
      ...Object.values(m).map((x) => x.toFixed(0)),
      `**${raw.toFixed(2)}** (≥ 0.9: ${met(raw >= 0.9)})`,
      own.toFixed(2),
      cpu("bare"),
      cpu("plugins"),
      (proxyUs.plugins / proxyUs.bare).toFixed(2),
      `${faults.bare.toFixed(2)} / ${faults.plugins.toFixed(2)}`,
    ]);
    console.log(`${size}: ${Object.entries(r).map(([k, v]) => `${k} ${m[k].toFixed(0)} (${v.map((x) => x.rps.toFixed(0)).join("/")})`).join(", ")}; plugins/bare ${raw.toFixed(2)}, plugins/bare-with-headers ${own.toFixed(2)}; proxy µs/req bare ${proxyUs.bare.toFixed(1)} plugins ${proxyUs.plugins.toFixed(1)}`);
  }
  out.push("## HTTP plugin overhead (A/B)");
  out.push("");
  out.push(`\`wrk -t1 -c64 -d${SECONDS}s\`, ${ROUNDS} rounds rotating across the arms, medians. "+plugins" is HeadersPlugin + RetryPlugin with default options. HeadersPlugin adds five request headers (${ADDED.map((h) => h.split(":")[0]).join(", ")}); the backend shares the machine's 2 cores and parses them too, so the third arm has the client send the same headers to the bare proxy: the "same headers" column is the proxy's own plugin overhead in req/s. The CPU columns are user + system time per request of the proxy process and of the backend (from /proc, medians of the rounds): the last one is what the plugins cost the proxy itself.`);
  out.push("");
  out.push(
    table(
      ["size", "bare req/s", "+plugins req/s", "bare + client-sent headers req/s", "+plugins / bare (target)", "+plugins / bare with the same headers", "bare: proxy / backend CPU µs/req", "+plugins: proxy / backend CPU µs/req", "proxy CPU +plugins / bare", "proxy page faults/req bare / +plugins"],
      rows,
    ),
  );
  out.push("");
  out.push("Command: `node bench/run.mjs http-plugins`; `BENCH_HTTP_PROF=<dir>` adds `node --cpu-prof` of the proxies.");
  writeResult("http-plugins", out.join("\n"));
} finally {
  await plug.stop();
  await bare.stop();
  await backend.stop();
}
