// A/B of two builds of the bare Switchyard HTTP proxy, for changes whose effect is smaller than
// this shared VM's drift: both proxies run at once and wrk rounds alternate between them (A,B then
// B,A), and the median of the per-pair ratios B/A is reported.
// Usage: build the baseline in a worktree (git worktree add /tmp/base <rev> && cd /tmp/base &&
//   pnpm install --frozen-lockfile --offline && pnpm build), then, after pnpm build here:
//   ROUNDS=10 node bench/tools/ab-http.mjs /tmp/base .
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { median, startServer } from "../lib/proc.mjs";

const [treeA, treeB] = process.argv.slice(2).map((p) => resolve(p));
if (!treeA || !treeB) throw new Error("usage: node bench/tools/ab-http.mjs <tree A> <tree B>");
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 3);

const wrk = (port, seconds, path) =>
  Number(/Requests\/sec:\s+([\d.]+)/.exec(execFileSync("wrk", ["-t1", "-c64", `-d${seconds}s`, `http://127.0.0.1:${port}${path}`], { encoding: "utf8" }))[1]);

const backend = await startServer("../http-backend.mjs");
const a = await startServer(`${treeA}/bench/http-proxy.mjs`, ["switchyard", String(backend.port)]);
const b = await startServer(`${treeB}/bench/http-proxy.mjs`, ["switchyard", String(backend.port)]);
try {
  for (const path of ["/", "/big"]) {
    wrk(a.port, 1, path);
    wrk(b.port, 1, path);
    const ra = [];
    const rb = [];
    const ratios = [];
    for (let i = 0; i < ROUNDS; i++) {
      const first = i % 2 ? b : a;
      const second = i % 2 ? a : b;
      const x = wrk(first.port, SECONDS, path);
      const y = wrk(second.port, SECONDS, path);
      const [va, vb] = i % 2 ? [y, x] : [x, y];
      ra.push(va);
      rb.push(vb);
      ratios.push(vb / va);
    }
    console.log(
      `${path}: A ${median(ra).toFixed(0)} req/s, B ${median(rb).toFixed(0)} req/s, median pair B/A ${median(ratios).toFixed(3)}`,
      `(pairs ${ratios.map((r) => r.toFixed(2)).join(" ")})`,
    );
  }
} finally {
  await a.stop();
  await b.stop();
  await backend.stop();
}
