// The verdicts of every recorded HTTP bench run (bench/results/http-history.jsonl, one JSON
// object per run; BENCH_HTTP_HISTORY=path writes elsewhere, e.g. for a short trial run), so BENCHMARKS.md shows how often each target is met on this shared VM and
// not only what the latest run happened to give.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { here, table } from "./proc.mjs";

const FILE = process.env.BENCH_HTTP_HISTORY ?? here("../results/http-history.jsonl");

/** the per-size figures the targets are judged on, plus nginx's own ratio to node-http-proxy */
export const HISTORY_KEYS = [
  ["nhp", "Switchyard / node-http-proxy", (v) => v >= 3],
  ["nginx", "Switchyard / nginx", (v) => v >= 0.8],
  ["p99", "p99 Switchyard / nginx", (v) => v <= 1.5],
  ["plugins", "+plugins / bare", (v) => v >= 0.9],
  ["cpu", "proxy CPU/req, node-http-proxy / Switchyard", undefined],
  ["nginxNhp", "nginx / node-http-proxy", undefined],
  ["pipe", "Switchyard / bare Node pipe", undefined],
];

export function readHistory() {
  if (!existsSync(FILE)) return [];
  return readFileSync(FILE, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** appends one run: { date, sizes: { "12 B": { nhp, nginx, … }, … } } */
export function recordRun(entry) {
  appendFileSync(FILE, JSON.stringify(entry) + "\n");
}

/** markdown: one row per run and size, then how many runs met each target */
export function historyMarkdown(runs) {
  const fmt = (v) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(2) : "");
  const rows = [];
  for (const run of runs) for (const [size, v] of Object.entries(run.sizes)) rows.push([run.date.slice(0, 16).replace("T", " "), `${run.rounds} × ${run.seconds} s${run.order ? `, ${run.order} order` : ""}`, size, ...HISTORY_KEYS.map(([k]) => fmt(v[k]))]);
  const out = [table(["run (UTC)", "rounds × wrk run", "size", ...HISTORY_KEYS.map(([, label]) => label)], rows), ""];
  const sizes = [...new Set(runs.flatMap((r) => Object.keys(r.sizes)))];
  for (const size of sizes) {
    const parts = [];
    for (const [k, label, ok] of HISTORY_KEYS) {
      if (!ok) continue;
      const vals = runs.map((r) => r.sizes[size]?.[k]).filter((v) => typeof v === "number" && Number.isFinite(v));
      if (vals.length > 0) parts.push(`${label} met in ${vals.filter(ok).length} of ${vals.length}`);
    }
    out.push(`- ${size}: ${parts.join("; ")}`);
  }
  return out.join("\n");
}
