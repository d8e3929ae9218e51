// Plugin overhead only: Switchyard bare vs Switchyard + HeadersPlugin + RetryPlugin, wrk -t1
// -c64, 12 B and 64 KiB responses, ROUNDS alternating rounds (the median is printed; the two
// proxies take turns so drift on a shared 2-core machine hits both alike).
// Env: BENCH_HTTP_SECONDS (5), BENCH_HTTP_ROUNDS (3), BENCH_HTTP_PROF=dir (node --cpu-prof
// into dir for both proxy processes).
import { execFileSync } from "node:child_process";
import { startServer } from "./lib/proc.mjs";

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 3);
const PROF = process.env.BENCH_HTTP_PROF;
const flags = PROF ? ["--cpu-prof", `--cpu-prof-dir=${PROF}`] : [];

function wrk(url, seconds) {
  const text = execFileSync("wrk", ["-t1", "-c64", `-d${seconds}s`, url], { encoding: "utf8" });
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

const backend = await startServer("../http-backend.mjs");
const bare = await startServer("../http-proxy.mjs", ["switchyard", String(backend.port)], { flags });
const plug = await startServer("../http-proxy.mjs", ["switchyard-plugins", String(backend.port)], { flags });
try {
  for (const [size, path] of [["12 B", "/"], ["64 KiB", "/big"]]) {
    const r = { bare: [], plugins: [] };
    for (const [name, s] of [["bare", bare], ["plugins", plug]]) wrk(`http://127.0.0.1:${s.port}${path}`, 1);
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, s] of i % 2 ? [["plugins", plug], ["bare", bare]] : [["bare", bare], ["plugins", plug]]) {
        r[name].push(wrk(`http://127.0.0.1:${s.port}${path}`, SECONDS));
      }
    }
    const b = median(r.bare);
    const p = median(r.plugins);
    console.log(`${size}: bare ${b.toFixed(0)} req/s, +plugins ${p.toFixed(0)} req/s, ratio ${(p / b).toFixed(2)}  (bare ${r.bare.map((x) => x.toFixed(0)).join("/")}, plugins ${r.plugins.map((x) => x.toFixed(0)).join("/")})`);
  }
} finally {
  await plug.stop();
  await bare.stop();
  await backend.stop();
}
