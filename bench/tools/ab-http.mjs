// A/B of two builds of the bare Switchyard HTTP proxy, for changes whose effect is smaller than
// this shared VM's drift: both proxies run at once and wrk rounds alternate between them (A,B then
// B,A), and the median of the per-pair ratios B/A is reported, for req/s and for the proxy
// process's own CPU time per request (user + system, from /proc: the kernel's share of a proxy's
// work, syscalls and loopback TCP, counts too). CPU per request moves less with the machine's
// state than req/s does, which depends on how three processes share two cores.
// Usage: build the baseline in a worktree (git worktree add /tmp/base <rev> && cd /tmp/base &&
//   pnpm install --frozen-lockfile --offline && pnpm build), then, after pnpm build here:
//   ROUNDS=10 node bench/tools/ab-http.mjs /tmp/base .
// Env: ROUNDS (10), SECONDS_PER_RUN (3), PATHS ("/,/big"), KIND (switchyard | switchyard-plugins |
// switchyard-command-warn | switchyard-command-info), KIND_A / KIND_B (one per arm; the same tree
// twice measures two kinds: `KIND_A=switchyard-command-warn KIND_B=switchyard-command-info
// node bench/tools/ab-http.mjs . .` is what the access log costs).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { median, startServer } from "../lib/proc.mjs";

const [treeA, treeB] = process.argv.slice(2).map((p) => resolve(p));
if (!treeA || !treeB) throw new Error("usage: node bench/tools/ab-http.mjs <tree A> <tree B>");
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 3);
const PATHS = (process.env.PATHS ?? "/,/big").split(",");
const KIND = process.env.KIND ?? "switchyard";
// two kinds of proxy of the same tree (e.g. the command at log level warn vs info: what the
// access log costs): KIND_A and KIND_B override KIND per arm
const KIND_A = process.env.KIND_A ?? KIND;
const KIND_B = process.env.KIND_B ?? KIND;
const quiet = (kind) => ({ stdoutNull: kind.startsWith("switchyard-command") });

/** user + system CPU seconds of a process so far */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** one wrk run: req/s and the proxy's CPU µs per request */
function run(proxy, seconds, path) {
  const cpu0 = cpuSeconds(proxy.child.pid);
  const text = execFileSync("wrk", ["-t1", "-c64", `-d${seconds}s`, `http://127.0.0.1:${proxy.port}${path}`], { encoding: "utf8" });
  const cpu = cpuSeconds(proxy.child.pid) - cpu0;
  const requests = Number(/(\d+) requests in/.exec(text)[1]);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)[1]), usPerReq: (cpu * 1e6) / requests };
}

const backend = await startServer("../http-backend.mjs");
const a = await startServer(`${treeA}/bench/http-proxy.mjs`, [KIND_A, String(backend.port)], quiet(KIND_A));
const b = await startServer(`${treeB}/bench/http-proxy.mjs`, [KIND_B, String(backend.port)], quiet(KIND_B));
try {
  for (const path of PATHS) {
    run(a, 1, path);
    run(b, 1, path);
    const ra = [];
    const rb = [];
    for (let i = 0; i < ROUNDS; i++) {
      const [first, second] = i % 2 ? [b, a] : [a, b];
      const x = run(first, SECONDS, path);
      const y = run(second, SECONDS, path);
      const [va, vb] = i % 2 ? [y, x] : [x, y];
      ra.push(va);
      rb.push(vb);
    }
    const rps = rb.map((r, i) => r.rps / ra[i].rps);
    const cpu = rb.map((r, i) => r.usPerReq / ra[i].usPerReq);
    const m = (xs, k) => median(xs.map((r) => r[k]));
    console.log(`${path}: req/s A ${m(ra, "rps").toFixed(0)}, B ${m(rb, "rps").toFixed(0)}, median pair B/A ${median(rps).toFixed(3)} (pairs ${rps.map((r) => r.toFixed(2)).join(" ")})`);
    console.log(
      `${path}: proxy CPU µs/req A ${m(ra, "usPerReq").toFixed(1)}, B ${m(rb, "usPerReq").toFixed(1)}, median pair B/A ${median(cpu).toFixed(3)} (pairs ${cpu.map((r) => r.toFixed(2)).join(" ")})`,
    );
  }
} finally {
  await a.stop();
  await b.stop();
  await backend.stop();
}
