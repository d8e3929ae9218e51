// HTTPS: Switchyard terminating TLS (HttpProtocol behind a TLS listener) against nginx (one
// worker) terminating TLS with the same RSA-2048 certificate, TLS 1.3 on both, both proxying to
// one plain HTTP backend. Proxy CPU per request on keep-alive connections, and per new connection
// with a full handshake and with a resumed one (session tickets), without and with client
// certificates (verified against a CA). Every process is its own; rounds interleave the targets.
// Env: BENCH_TLS_SECONDS (5), BENCH_TLS_ROUNDS (2).
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { runLoad, startServer, table, writeResult, median, met, treeStat } from "./lib/proc.mjs";
import { ensureTools, startNginx } from "./http-peers.mjs";

const SECONDS = Number(process.env.BENCH_TLS_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_TLS_ROUNDS ?? 2);
const out = [];
const log = (s = "") => {
  console.log(s);
  out.push(s);
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");

const { createCa, createServerCert, createClientCert } = await import(new URL("../packages/plugin-mtls/dist/index.js", import.meta.url).href);
const certDir = mkdtempSync(join(os.tmpdir(), "sy-tls-bench-"));
const ca = createCa({ commonName: "Switchyard bench CA" });
const server = createServerCert({ ca, commonName: "bench.test", sans: ["DNS:bench.test", "IP:127.0.0.1"] });
const client = createClientCert({ ca, commonName: "bench-client" });
for (const [name, v] of Object.entries({ "ca.crt": ca.cert, "server.crt": server.cert, "server.key": server.key, "client.crt": client.cert, "client.key": client.key })) writeFileSync(join(certDir, name), v);

function startNginxTls(backendPort, clientCerts) {
  const server = [
    `ssl_certificate ${certDir}/server.crt;`,
    `ssl_certificate_key ${certDir}/server.key;`,
    "ssl_protocols TLSv1.2 TLSv1.3;",
    "keepalive_requests 1000000;",
    ...(clientCerts ? [`ssl_client_certificate ${certDir}/ca.crt;`, "ssl_verify_client on;"] : []),
  ].join("\n    ");
  return startNginx(backendPort, { listen: "ssl", server });
}

function load(port, mode, clientCert, seconds) {
  const conns = mode === "keepalive" ? 32 : 8;
  return runLoad("./tls-load.mjs", { port, conns, seconds, mode, dir: certDir, clientCert }, (seconds + 40) * 1000);
}

const tools = ensureTools();
const backend = await startServer("../http-backend.mjs");
const results = {};
try {
  for (const clientCerts of [false, true]) {
    const sy = await startServer("./tls-proxy.mjs", [String(backend.port), certDir, clientCerts ? "1" : "0"]);
    const pipe = await startServer("./tls-pipe.mjs", [String(backend.port), certDir, clientCerts ? "1" : "0"]);
    const targets = {
      switchyard: { port: sy.port, pid: sy.child.pid, stop: () => sy.stop() },
      "bare Node TLS pipe": { port: pipe.port, pid: pipe.child.pid, stop: () => pipe.stop() },
    };
    if (tools.nginx) targets.nginx = await startNginxTls(backend.port, clientCerts);
    try {
      for (const mode of ["keepalive", "full", "resumed"]) {
        const label = `${mode}${clientCerts ? ", client certificate" : ""}`;
        const entries = Object.entries(targets);
        for (const [, t] of entries) await load(t.port, mode, clientCerts, 1); // warm-up
        for (let round = 0; round < ROUNDS; round++) {
          for (const [name, t] of round % 2 ? [...entries].reverse() : entries) {
            const before = treeStat(t.pid).cpu;
            const r = await load(t.port, mode, clientCerts, SECONDS);
            const cpu = treeStat(t.pid).cpu - before;
            const per = mode === "keepalive" ? r.requests : r.connections;
            const row = { rate: per / SECONDS, us: (cpu * 1e6) / per, resumed: r.connections ? r.resumed / r.connections : 0, errors: r.errors };
            ((results[label] ??= {})[name] ??= []).push(row);
            console.error(`  ${label} ${name} round ${round + 1}: ${fmt(row.rate)}/s, ${fmt(row.us, 1)} µs each, resumed ${fmt(row.resumed * 100)}%${r.errors ? `, ${r.errors} errors` : ""}`);
          }
        }
      }
    } finally {
      for (const t of Object.values(targets)) await t.stop();
    }
  }
} finally {
  await backend.stop();
  rmSync(certDir, { recursive: true, force: true });
}

log("## HTTPS (TLS termination)");
log();
log(`nginx keeps a connection open for up to a million requests (\`keepalive_requests\`), like Switchyard. Switchyard (an \`http\` listener with \`tls\`, bench/lib/tls-proxy.mjs) against nginx 1.22 (one worker, \`ssl_protocols TLSv1.2 TLSv1.3\`), the same RSA-2048 certificate, TLS 1.3 clients (bench/lib/tls-load.mjs), both proxying to one plain HTTP backend. keep-alive: 32 connections sending GET / back to back, CPU per request; full / resumed: 8 loops opening a new TLS connection per request (a full handshake, or resuming the loop's last session ticket), CPU per connection. "bare Node TLS pipe" (bench/lib/tls-pipe.mjs) is \`tls.createServer\` with the same certificate piping each client to its own backend connection: no HTTP, no pool — the floor of what Node's TLS costs. "client certificate": the listener requires one (verified against the bench CA) and the client sends it. ${ROUNDS} rounds of ${SECONDS} s, alternating order; medians.`);
log();
const verdicts = [];
for (const [label, byName] of Object.entries(results)) {
  const rows = Object.fromEntries(Object.entries(byName).map(([n, rs]) => [n, { rate: median(rs.map((r) => r.rate)), us: median(rs.map((r) => r.us)), resumed: median(rs.map((r) => r.resumed)), errors: rs.reduce((a, r) => a + r.errors, 0) }]));
  const unit = label.startsWith("keepalive") ? "request" : "connection";
  log(`### ${label}`);
  log();
  log(table(["target", `${unit}s/s`, `proxy CPU µs per ${unit}`, "resumed", "errors"], Object.entries(rows).map(([n, r]) => [n, fmt(r.rate), fmt(r.us, 1), unit === "connection" ? `${fmt(r.resumed * 100)}%` : "", String(r.errors)])));
  log();
  const pipe = rows["bare Node TLS pipe"];
  if (rows.nginx) {
    verdicts.push(
      `${label}: Switchyard / nginx CPU per ${unit} = **${fmt(rows.switchyard.us / rows.nginx.us, 2)}** (≤ 1.5: ${met(rows.switchyard.us <= 1.5 * rows.nginx.us)})${pipe ? `; the bare Node TLS pipe / nginx = ${fmt(pipe.us / rows.nginx.us, 2)}` : ""}`,
    );
  }
}
for (const v of verdicts) log(`- ${v}`);
writeResult("tls", out.join("\n"));
