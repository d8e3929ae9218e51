// The Switchyard process of the soak (bench/soak.mjs), run with --expose-gc. argv: httpPort echoPort.
// One http listener ("web") and one tcp listener ("echo"), short timeouts so abusive clients are
// cut. Sends { type: "listeners", web, echo, options } and then "ready"; every { type: "rss" } answer
// (after forced GCs, bench/lib/control.mjs) carries proxy.stats(), the HTTP pools, the open fd
// count, the active libuv handles and the upstream errors seen so far by code.
import { readdirSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { serveControl } from "./control.mjs";

const pkg = (p) => pathToFileURL(new URL(`../../packages/${p}/dist/index.js`, import.meta.url).pathname).href;
const { Proxy, silentLogger } = await import(pkg("core"));
const { HttpProtocol } = await import(pkg("protocol-http"));

const SOAK_OPTIONS = {
  // listener (HttpProtocol defaults): a head must be complete within 2 s → 408
  http: { headersTimeout: 2000, keepAliveTimeout: 2000, lingerTimeout: 1000 },
  // route: upstream deadlines, and idle pooled sockets closed after 2 s (so none outlive the settle)
  route: { connectTimeout: 2000, upstreamHeadersTimeout: 5000, bodyTimeout: 5000, pool: { idleTimeout: 2000 } },
  // tcp listener: a connection with no traffic either way for 3 s is closed
  tcp: { handshake: 5000, idle: 3000 },
};

const [httpPort, echoPort] = [Number(process.argv[2]), Number(process.argv[3])];
const http = new HttpProtocol(SOAK_OPTIONS.http);
const proxy = new Proxy({
  listeners: [
    { name: "web", protocol: "http", host: "127.0.0.1", port: 0 },
    { name: "echo", protocol: "tcp", host: "127.0.0.1", port: 0, timeouts: SOAK_OPTIONS.tcp },
  ],
  routes: [
    { name: "web", listener: "web", targets: [`127.0.0.1:${httpPort}`], options: SOAK_OPTIONS.route },
    { name: "echo", listener: "echo", targets: [`127.0.0.1:${echoPort}`] },
  ],
  plugins: [http],
  logger: silentLogger,
});
const upstreamErrors = {};
proxy.events.on("upstreamError", ({ error }) => {
  const k = error?.code ?? "unknown";
  upstreamErrors[k] = (upstreamErrors[k] ?? 0) + 1;
});
await proxy.listen();

function stats() {
  const pools = http.poolStats(proxy);
  return {
    proxy: proxy.stats(),
    pools,
    poolOpen: pools.reduce((n, p) => n + p.open, 0),
    poolIdle: pools.reduce((n, p) => n + p.idle, 0),
    fds: readdirSync("/proc/self/fd").length,
    handles: process.getActiveResourcesInfo().length,
    upstreamErrors: { ...upstreamErrors },
  };
}

process.send({ type: "listeners", web: proxy.address("web").port, echo: proxy.address("echo").port, options: SOAK_OPTIONS });
serveControl(proxy.address("web").port, () => proxy.close({ timeout: 100 }), stats);
