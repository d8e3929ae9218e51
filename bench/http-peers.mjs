// The C peers of the HTTP bench: nginx (one worker, upstream keep-alive pool) and HAProxy (one thread,
// http-reuse always). Installs the Debian packages when missing (apt-get). Everything lives in a temp dir.
import { execSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";

function have(cmd) {
  try {
    execSync(`command -v ${cmd}`, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Installs wrk, nginx and haproxy with apt-get if they are missing; returns what is available. */
export function ensureTools() {
  const missing = ["wrk", "nginx", "haproxy"].filter((c) => !have(c) && !existsSync(`/usr/sbin/${c}`));
  if (missing.length > 0 && have("apt-get")) {
    try {
      console.error(`installing ${missing.join(", ")} with apt-get…`);
      execSync(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(" ")}`, { stdio: "ignore", timeout: 180_000 });
    } catch (err) {
      console.error(`apt-get failed: ${err.message}`);
    }
  }
  return {
    wrk: have("wrk"),
    nginx: have("nginx") || existsSync("/usr/sbin/nginx"),
    haproxy: have("haproxy") || existsSync("/usr/sbin/haproxy"),
  };
}

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * nginx with one worker proxying to the backend with an upstream keep-alive pool. `tls` (the TLS
 * bench): `{ listen: "ssl", server: "<ssl_* directives>" }` added to the server block.
 */
export async function startNginx(backendPort, tls) {
  const dir = mkdtempSync(join(os.tmpdir(), "sy-nginx-"));
  const port = await freePort();
  const conf = `
worker_processes 1;
master_process off;
daemon off;
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port}${tls ? ` ${tls.listen}` : ""};
    ${tls?.server ?? ""}
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  const bin = have("nginx") ? "nginx" : "/usr/sbin/nginx";
  const child = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "inherit"] });
  await waitForPort(port);
  return peerHandle(child, port, dir);
}

/**
 * HAProxy in HTTP mode with one thread and `http-reuse always` (its most aggressive upstream
 * connection sharing), the other C peer of the HTTP bench.
 */
export async function startHaproxy(backendPort) {
  const dir = mkdtempSync(join(os.tmpdir(), "sy-haproxy-"));
  const port = await freePort();
  const conf = `
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend web
  bind 127.0.0.1:${port}
  default_backend app
backend app
  http-reuse always
  server b1 127.0.0.1:${backendPort}
`;
  writeFileSync(join(dir, "haproxy.cfg"), conf);
  const bin = have("haproxy") ? "haproxy" : "/usr/sbin/haproxy";
  const child = spawn(bin, ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: ["ignore", "ignore", "inherit"] });
  await waitForPort(port);
  return peerHandle(child, port, dir);
}

/** A peer process serving on `port`: stop() ends it and removes its temp dir. */
export function peerHandle(child, port, dir) {
  return {
    port,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitForPort(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), r(true)));
      s.once("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after 5 s`);
}
