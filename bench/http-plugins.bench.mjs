// Plugin overhead only: Switchyard bare vs Switchyard + HeadersPlugin + RetryPlugin, wrk -t1
// -c64, 12 B and 64 KiB responses, ROUNDS alternating rounds (medians; the arms take turns so
// drift on a shared 2-core machine hits all alike). A third arm sends the bare proxy the five
// headers HeadersPlugin adds (X-Forwarded-For/-Proto/-Host/-Port, Via) from the client, so the
// backend — which shares the 2 cores — parses the same requests as behind the plugins: the ratio
// against that arm is the proxy's own plugin overhead. Writes bench/results/http-plugins.md.
// Env: BENCH_HTTP_SECONDS (4), BENCH_HTTP_ROUNDS (5), BENCH_HTTP_PROF=dir (node --cpu-prof
// into dir for both proxy processes).
import { execFileSync } from "node:child_process";
import { startServer, table, writeResult, met } from "./lib/proc.mjs";

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 5);
const PROF = process.env.BENCH_HTTP_PROF;
const flags = PROF ? ["--cpu-prof", `--cpu-prof-dir=${PROF}`] : [];

// what HeadersPlugin adds to each request with default options (the port varies; same length)
const ADDED = ["X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: 127.0.0.1:8080", "X-Forwarded-Port: 40000", "Via: 1.1 switchyard"];

function wrk(url, seconds, extra = []) {
  const text = execFileSync("wrk", ["-t1", "-c64", `-d${seconds}s`, ...extra, url], { encoding: "utf8" });
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
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
    for (const [, s, extra] of arms) wrk(`http://127.0.0.1:${s.port}${path}`, 1, extra);
    for (let i = 0; i < ROUNDS; i++) {
      const order = [...arms.slice(i % arms.length), ...arms.slice(0, i % arms.length)];
      for (const [name, s, extra] of order) r[name].push(wrk(`http://127.0.0.1:${s.port}${path}`, SECONDS, extra));
    }
    const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)]));
    const raw = m.plugins / m.bare;
    const own = m.plugins / m["bare, client sends the added headers"];
    rows.push([size, ...Object.values(m).map((x) => x.toFixed(0)), `**${raw.toFixed(2)}** (≥ 0.9: ${met(raw >= 0.9)})`, own.toFixed(2)]);
    console.log(`${size}: ${Object.entries(r).map(([k, v]) => `${k} ${m[k].toFixed(0)} (${v.map((x) => x.toFixed(0)).join("/")})`).join(", ")}; plugins/bare ${raw.toFixed(2)}, plugins/bare-with-headers ${own.toFixed(2)}`);
  }
  out.push("## HTTP plugin overhead (A/B)");
  out.push("");
  out.push(`\`wrk -t1 -c64 -d${SECONDS}s\`, ${ROUNDS} rounds rotating across the arms, medians. "+plugins" is HeadersPlugin + RetryPlugin with default options. HeadersPlugin adds five request headers (${ADDED.map((h) => h.split(":")[0]).join(", ")}); the backend shares the machine's 2 cores and parses them too, so the third arm has the client send the same headers to the bare proxy: the last column is the proxy's own plugin overhead.`);
  out.push("");
  out.push(table(["size", "bare req/s", "+plugins req/s", "bare + client-sent headers req/s", "+plugins / bare (target)", "+plugins / bare with the same headers"], rows));
  out.push("");
  out.push("Command: `node bench/run.mjs http-plugins`; `BENCH_HTTP_PROF=<dir>` adds `node --cpu-prof` of the proxies.");
  writeResult("http-plugins", out.join("\n"));
} finally {
  await plug.stop();
  await bare.stop();
  await backend.stop();
}
