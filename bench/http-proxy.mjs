// One HTTP reverse proxy under test, its own process. argv: kind backendPort.
//   switchyard          Proxy + HttpProtocol only
//   switchyard-plugins  + HeadersPlugin + RetryPlugin (skipped by the bench if they do not build)
//   switchyard-record   the bare proxy with a requestComplete listener that drops the record
//   node-http-proxy     http-proxy with a keep-alive agent
//   fastify             @fastify/http-proxy (undici pool)
//   switchyard-command-warn / -info   the `switchyard` command's setup and logger at that level
//                       (info: the access log, one JSON line per request; run with stdout on /dev/null)
import http from "node:http";
import { pathToFileURL } from "node:url";
import { serveControl } from "./lib/control.mjs";

const [kind, backendPort] = [process.argv[2], Number(process.argv[3])];
const target = `http://127.0.0.1:${backendPort}`;
const pkg = (p) => pathToFileURL(new URL(`../packages/${p}/dist/index.js`, import.meta.url).pathname).href;

if (kind === "switchyard" || kind === "switchyard-plugins" || kind === "switchyard-record") {
  const { Proxy, silentLogger } = await import(pkg("core"));
  const { HttpProtocol } = await import(pkg("protocol-http"));
  const plugins = [new HttpProtocol()];
  if (kind === "switchyard-plugins") {
    const { HeadersPlugin } = await import(pkg("plugin-headers"));
    const { RetryPlugin } = await import(pkg("plugin-retry"));
    plugins.push(new HeadersPlugin(), new RetryPlugin());
  }
  const proxy = new Proxy({
    listeners: [{ name: "bench", protocol: "http", host: "127.0.0.1", port: 0 }],
    routes: [{ targets: [`127.0.0.1:${backendPort}`] }],
    plugins,
    logger: silentLogger,
  });
  // the access-log record built and emitted for every request, with a listener that drops it:
  // what the record costs apart from writing the line
  if (kind === "switchyard-record") proxy.events.on("requestComplete", () => {});
  await proxy.listen();
  serveControl(proxy.address("bench").port, () => proxy.close({ timeout: 100 }), () => proxy.stats());
} else if (kind === "switchyard-command-warn" || kind === "switchyard-command-info") {
  // what the `switchyard` command runs: its config preparation, its pino logger writing to stdout
  // (the bench starts this process with stdout on /dev/null), and at info one http.request line
  // per request (the access log); at warn no request line and no requestComplete listener
  const { prepareConfig, serve } = await import(pkg("cli"));
  const level = kind.endsWith("info") ? "info" : "warn";
  const config = {
    listeners: [{ name: "bench", protocol: "http", host: "127.0.0.1", port: 0 }],
    routes: [{ targets: [`127.0.0.1:${backendPort}`] }],
    log: { level },
  };
  const result = await prepareConfig(config, undefined);
  if (!result.ok) throw new Error(`bench config: ${result.problems.join("; ")}`);
  const running = await serve(result.prepared);
  if (typeof running === "number") throw new Error(`switchyard serve failed (${running})`);
  serveControl(running.proxy.address("bench").port, () => running.proxy.close({ timeout: 100 }), () => running.proxy.stats());
} else if (kind === "node-http-proxy") {
  const { default: httpProxy } = await import("http-proxy");
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const proxy = httpProxy.createProxyServer({ target, agent });
  proxy.on("error", (_e, _req, res) => {
    try {
      res.writeHead(502).end();
    } catch {}
  });
  const server = http.createServer((req, res) => proxy.web(req, res));
  server.listen(0, "127.0.0.1", () => serveControl(server.address().port, () => server.close()));
} else if (kind === "fastify") {
  const { default: Fastify } = await import("fastify");
  const { default: fastifyProxy } = await import("@fastify/http-proxy");
  const app = Fastify({ logger: false });
  await app.register(fastifyProxy, { upstream: target });
  await app.listen({ host: "127.0.0.1", port: 0 });
  serveControl(app.server.address().port, () => app.close());
} else {
  throw new Error(`unknown proxy kind ${kind}`);
}
