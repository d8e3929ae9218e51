// SMTP: messages per second and the proxy's CPU per message, for 1 KB and 1 MB messages over 16
// parallel connections, sent directly to an smtp-server backend, through Switchyard's smtp
// listener (routing by EHLO) and through HAProxy in TCP mode (one thread: the byte-relay floor).
// Backend, proxies and the load generator are separate processes on 127.0.0.1; rounds interleave
// the targets. Env: BENCH_SMTP_SECONDS (6), BENCH_SMTP_ROUNDS (3), BENCH_SMTP_CONNS (16).
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { runLoad, startServer, table, writeResult, median, met, treeStat } from "./lib/proc.mjs";
import { ensureTools, freePort, peerHandle, waitForPort } from "./http-peers.mjs";

const SECONDS = Number(process.env.BENCH_SMTP_SECONDS ?? 6);
const ROUNDS = Number(process.env.BENCH_SMTP_ROUNDS ?? 3);
const CONNS = Number(process.env.BENCH_SMTP_CONNS ?? 16);
const out = [];
const log = (s = "") => {
  console.log(s);
  out.push(s);
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");

async function startHaproxyTcp(backendPort) {
  const dir = mkdtempSync(join(os.tmpdir(), "sy-haproxy-tcp-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "haproxy.cfg"),
    `global\n  nbthread 1\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend smtp\n  bind 127.0.0.1:${port}\n  default_backend mail\nbackend mail\n  server b1 127.0.0.1:${backendPort}\n`,
  );
  const child = spawn("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: ["ignore", "ignore", "inherit"] });
  await waitForPort(port);
  return peerHandle(child, port, dir);
}

const load = (port, size, seconds) => runLoad("./smtp-load.mjs", { port, conns: CONNS, size, seconds }, (seconds + 40) * 1000);

const tools = ensureTools();
const backend = await startServer("./smtp-backend.mjs");
const proxy = await startServer("./smtp-proxy.mjs", [String(backend.port)]);
const targets = { direct: { port: backend.port }, switchyard: { port: proxy.port, pid: proxy.child.pid } };
if (tools.haproxy) targets["haproxy (tcp mode)"] = await startHaproxyTcp(backend.port);

const results = {};
try {
  for (const [label, size] of [["1 KB", 1024], ["1 MB", 1024 * 1024]]) {
    const entries = Object.entries(targets);
    for (const [, t] of entries) await load(t.port, size, 1); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      const k = round % entries.length;
      for (const [name, t] of [...entries.slice(k), ...entries.slice(0, k)]) {
        const before = t.pid ? treeStat(t.pid).cpu : NaN;
        const backendBefore = treeStat(backend.child.pid).cpu;
        const r = await load(t.port, size, SECONDS);
        const cpu = t.pid ? treeStat(t.pid).cpu - before : NaN;
        const backendCpu = treeStat(backend.child.pid).cpu - backendBefore;
        const row = { mps: r.messages / SECONDS, errors: r.errors, proxyUs: (cpu * 1e6) / r.messages, backendUs: (backendCpu * 1e6) / r.messages };
        ((results[label] ??= {})[name] ??= []).push(row);
        console.error(`  ${label} ${name} round ${round + 1}: ${fmt(row.mps, 1)} msg/s, proxy ${fmt(row.proxyUs, 0)} µs/msg${r.errors ? `, ${r.errors} errors` : ""}`);
      }
    }
  }
} finally {
  await proxy.stop();
  for (const t of Object.values(targets)) await t.stop?.();
  await backend.stop();
}

log("## SMTP (routing by EHLO)");
log();
log(`${CONNS} connections, each sending messages back to back for ${SECONDS} s (MAIL, RCPT, DATA, body, one command at a time) to an smtp-server backend that discards them (bench/lib/smtp-load.mjs, smtp-backend.mjs); ${ROUNDS} rounds interleaved across targets, each round starting one target later; medians. Switchyard is one \`smtp\` listener routing by EHLO (bench/lib/smtp-proxy.mjs); HAProxy runs in TCP mode with one thread, the byte-relay floor (it reads no SMTP). "proxy CPU µs/msg" is the proxy process's user + system CPU per message.`);
log();
for (const [label, byName] of Object.entries(results)) {
  const rows = Object.fromEntries(Object.entries(byName).map(([n, rs]) => [n, { mps: median(rs.map((r) => r.mps)), us: median(rs.map((r) => r.proxyUs)), backendUs: median(rs.map((r) => r.backendUs)), errors: rs.reduce((a, r) => a + r.errors, 0), runs: rs.map((r) => r.mps) }]));
  log(`### ${label} messages`);
  log();
  log(table(["target", "msg/s", "vs direct", "proxy CPU µs/msg", "backend CPU µs/msg", "errors", "msg/s every round"], Object.entries(rows).map(([n, r]) => [n, fmt(r.mps, 1), fmt(r.mps / rows.direct.mps, 2), n === "direct" ? "" : fmt(r.us, 0), fmt(r.backendUs, 0), String(r.errors), r.runs.map((x) => fmt(x, 1)).join(" / ")])));
  log();
  const sy = rows.switchyard;
  const hap = rows["haproxy (tcp mode)"];
  log(`- Switchyard / direct msg/s = **${fmt(sy.mps / rows.direct.mps, 2)}** (≥ 0.85: ${met(sy.mps / rows.direct.mps >= 0.85)})`);
  if (hap) log(`- proxy CPU per message, Switchyard / HAProxy = **${fmt(sy.us / hap.us, 2)}** (≤ 2: ${met(sy.us <= 2 * hap.us)})`);
  log();
}
writeResult("smtp", out.join("\n"));
