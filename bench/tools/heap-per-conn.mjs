// Where the memory of an idle proxied connection goes: holds N idle connections through a proxy
// (bench/lib/switchyard-proxy.mjs by default, or pipe-proxy.mjs), takes a heap snapshot before
// and while holding, and prints the per-connection difference by object kind.
// Usage (after pnpm build): node bench/tools/heap-per-conn.mjs [switchyard|pipe] [N=2000]
// The RSS it prints includes the snapshots' own cost; bench/tcp.bench.mjs measures RSS without them.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { here, load, startNode, startServer } from "../lib/proc.mjs";

const which = process.argv[2] ?? "switchyard";
const N = Number(process.argv[3] ?? 2000);
const HOST = "127.0.0.1";
const dir = mkdtempSync(join(tmpdir(), "heap-per-conn-"));

const backend = await startServer("./backend.mjs");
const proxy = await startServer(`./${which}-proxy.mjs`, [HOST, String(backend.port)], {
  flags: ["--expose-gc"],
  env: { BENCH_HEAP_SNAPSHOTS: dir },
});
try {
  await load({ mode: "cps", host: HOST, port: proxy.port, concurrency: 8, durationMs: 300, timeoutMs: 20_000 });
  const before = await proxy.rss();
  const gen = startNode(here("./loadgen.mjs"), [JSON.stringify({ mode: "idle", host: HOST, port: proxy.port, n: N, concurrency: 64, timeoutMs: 120_000 })]);
  const held = await gen.next("held", 120_000);
  const after = await proxy.rss();
  gen.send({ type: "release" });
  await gen.next("result", 30_000);
  await gen.stop();
  const [a, b] = readdirSync(dir).sort().map((f) => summarize(join(dir, f)));
  console.log(`${which}: ${held.held} connections held; RSS ${((after.rss - before.rss) / held.held / 1024).toFixed(2)} KB/conn, heap used ${((after.heapUsed - before.heapUsed) / held.held / 1024).toFixed(2)} KB/conn`);
  console.log("objects/conn  bytes/conn  kind:name");
  const rows = [];
  for (const [k, [count, size]] of b) {
    const [c0, s0] = a.get(k) ?? [0, 0];
    if (Math.abs(size - s0) > held.held * 4) rows.push([k, (count - c0) / held.held, (size - s0) / held.held]);
  }
  rows.sort((x, y) => y[2] - x[2]);
  for (const [k, c, s] of rows.slice(0, 25)) console.log(`${c.toFixed(2).padStart(12)}  ${s.toFixed(1).padStart(10)}  ${k}`);
  console.log(`total of the rows above: ${rows.reduce((t, r) => t + r[2], 0).toFixed(0)} B/conn`);
} finally {
  await proxy.stop();
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** self size and count per (node type, name) of a .heapsnapshot */
function summarize(file) {
  const snap = JSON.parse(readFileSync(file, "utf8"));
  const { node_fields: fields, node_types: [types] } = snap.snapshot.meta;
  const [iType, iName, iSize] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const out = new Map();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const key = `${types[snap.nodes[i + iType]]}:${snap.strings[snap.nodes[i + iName]].slice(0, 50)}`;
    const e = out.get(key) ?? [0, 0];
    e[0]++;
    e[1] += snap.nodes[i + iSize];
    out.set(key, e);
  }
  return out;
}
