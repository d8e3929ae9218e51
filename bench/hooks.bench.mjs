// Micro-benchmark: what does an untapped hook cost on the hot path?
// Times the guarded pattern `if (hook.isUsed()) await hook.promise(ctx)` on the real
// `new Proxy(...).hooks.onRequest` (an AsyncSeriesWaterfallHook): untapped, vs a baseline loop
// with no hook, vs the same hook with one tap. In-process by nature (no sockets involved).
import { pathToFileURL } from "node:url";
import { table, writeResult, median, met } from "./lib/proc.mjs";

const corePath = process.env.BENCH_CORE ?? new URL("../packages/core/dist/index.js", import.meta.url).pathname;
const { Proxy, silentLogger } = await import(pathToFileURL(corePath).href);

const N_FAST = Number(process.env.BENCH_HOOK_N ?? 10_000_000);
const N_SLOW = Math.max(1, Math.floor(N_FAST / 10));
const RUNS = 7;
const newProxy = () => new Proxy({ listeners: [], logger: silentLogger });

const untapped = newProxy().hooks.onRequest;
const tappedProxy = newProxy();
tappedProxy.hooks.onRequest.tap("bench", (req) => req);
const tapped = tappedProxy.hooks.onRequest;
const ctx = { protocol: "http", method: "GET", path: "/" };

let sink = 0;
// All loops share one shape: an async function, a counter, a side effect the JIT cannot drop.
async function baseline(n) {
  for (let i = 0; i < n; i++) sink ^= i;
}
async function guarded(hook, n) {
  for (let i = 0; i < n; i++) {
    if (hook.isUsed()) await hook.promise(ctx);
    sink ^= i;
  }
}
async function unguarded(hook, n) {
  for (let i = 0; i < n; i++) {
    await hook.promise(ctx);
    sink ^= i;
  }
}

const cases = [
  ["baseline loop (no hook)", (n) => baseline(n), N_FAST],
  ["untapped onRequest, guarded `if (isUsed()) await promise()`", (n) => guarded(untapped, n), N_FAST],
  ["untapped onRequest, unguarded `await promise()`", (n) => unguarded(untapped, n), N_SLOW],
  ["onRequest with 1 tap, guarded", (n) => guarded(tapped, n), N_SLOW],
];

const results = [];
for (const [name, fn, n] of cases) {
  await fn(Math.min(n, 100_000)); // warm-up
  const samples = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    await fn(n);
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  results.push({ name, n, ns: median(samples), isUsed: name.includes("untapped") ? untapped.isUsed() : undefined });
  console.error(`  ${name}: ${median(samples).toFixed(2)} ns/op`);
}

const base = results[0].ns;
const untappedGuarded = results[1].ns;
const overhead = untappedGuarded - base;
const ok = overhead < 5; // within noise of the empty loop: a property read and a length check
const out = [];
out.push("## Hooks: cost of an untapped hook on the hot path");
out.push("");
out.push(`Real \`new Proxy(...).hooks.onRequest\` (AsyncSeriesWaterfallHook), median of ${RUNS} runs, node ${process.version}.`);
out.push("");
out.push(
  table(
    ["case", "iterations", "ns/op", "over baseline ns/op"],
    results.map((r) => [r.name, String(r.n), r.ns.toFixed(2), (r.ns - base).toFixed(2)]),
  ),
);
out.push("");
out.push(`\`untapped.isUsed()\` returns **${untapped.isUsed()}** (taps: ${untapped.taps.length}, interceptors: ${untapped.interceptors.length}).`);
out.push("");
out.push(`Untapped guarded hook costs ${overhead.toFixed(2)} ns/op over the empty loop (target: within noise, < 5 ns): ${met(ok)}.`);
if (untapped.isUsed()) {
  out.push("");
  out.push(
    "The guard does not skip the call: core's `wrapTaps` (packages/core/src/hooks.ts) registers a tapable `register` interceptor on every hook, " +
      "and tapable's `isUsed()` is `taps.length > 0 || interceptors.length > 0`, so every untapped hook reports itself used and its `promise()` runs (a Promise and a microtask per call).",
  );
}
out.push("");
out.push("Command: `node bench/run.mjs hooks` (or `pnpm bench`).");
const md = out.join("\n");
console.log(md);
writeResult("hooks", md);
if (sink === 0.5) console.log(sink);
