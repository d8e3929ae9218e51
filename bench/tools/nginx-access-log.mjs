// What an access log costs nginx (the peer to judge Switchyard's access log by): CPU per request
// of one nginx worker proxying 12-byte responses with \`access_log off\` against a JSON access log
// of the same fields as Switchyard's http.request line, buffered (64 KiB, flushed every second) to
// /dev/null; wrk -t1 -c64, 3 s runs, 8 alternating pairs, median of the pair ratios.
// Usage (after pnpm build): node bench/tools/nginx-access-log.mjs
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { startServer, treeStat, median } from "../lib/proc.mjs";
import { freePort, peerHandle, waitForPort } from "../http-peers.mjs";
async function ngx(backendPort, log) {
  const dir = mkdtempSync(join(os.tmpdir(), "ngxlog-"));
  const port = await freePort();
  writeFileSync(join(dir, "nginx.conf"), `worker_processes 1; master_process off; daemon off; user root; pid ${dir}/pid; error_log ${dir}/err warn;
events { worker_connections 4096; }
http { ${log ? `log_format j escape=json '{"time":"$time_iso8601","id":"$request_id","client":"$remote_addr","method":"$request_method","path":"$uri","status":$status,"durationMs":$request_time,"upstreamMs":"$upstream_response_time","bytesIn":$request_length,"bytesOut":$bytes_sent}'; access_log /dev/null j buffer=64k flush=1s;` : "access_log off;"}
 client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
 upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
 server { listen 127.0.0.1:${port}; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }`);
  const child = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  await waitForPort(port);
  return peerHandle(child, port, dir);
}
const backend = await startServer("../http-backend.mjs");
const off = await ngx(backend.port, false), on = await ngx(backend.port, true);
function run(t) { const c0 = treeStat(t.pid).cpu; const out = execFileSync("wrk", ["-t1", "-c64", "-d3s", `http://127.0.0.1:${t.port}/`], { encoding: "utf8" }); const n = Number(/(\d+) requests in/.exec(out)[1]); return ((treeStat(t.pid).cpu - c0) * 1e6) / n; }
run(off); run(on);
const ratios = [];
for (let i = 0; i < 8; i++) { const [a, b] = i % 2 ? [run(on), run(off)].reverse() : [run(off), run(on)]; ratios.push(b / a); console.log(a.toFixed(1), b.toFixed(1)); }
console.log("nginx access log on/off CPU per request, median pair:", median(ratios).toFixed(3));
await off.stop(); await on.stop(); await backend.stop();
