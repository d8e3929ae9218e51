// Switchyard with one tcp listener, run as its own process. argv: targetHost targetPort.
// BENCH_CORE (env) may point at another build of @switchyard/core's dist (to measure a change).
import { pathToFileURL } from "node:url";
import { serveControl } from "./control.mjs";

const corePath = process.env.BENCH_CORE ?? new URL("../../packages/core/dist/index.js", import.meta.url).pathname;
const { Proxy, silentLogger } = await import(pathToFileURL(corePath).href);

const [host, port] = [process.argv[2], Number(process.argv[3])];
const proxy = new Proxy({
  listeners: [{ name: "bench", protocol: "tcp", host: "127.0.0.1", port: 0 }],
  routes: [{ targets: [`${host}:${port}`] }],
  logger: silentLogger,
});
await proxy.listen();
serveControl(proxy.address("bench").port, () => proxy.close({ timeout: 100 }), () => proxy.stats());
