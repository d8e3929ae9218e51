// Switchyard terminating TLS in front of an HTTP backend, its own process for the TLS bench.
// argv: backendPort certDir clientCerts("0"|"1"). certDir holds server.crt, server.key, ca.crt.
import { readFileSync } from "node:fs";
import { serveControl } from "./control.mjs";

const core = await import(new URL("../../packages/core/dist/index.js", import.meta.url).href);
const { HttpProtocol } = await import(new URL("../../packages/protocol-http/dist/index.js", import.meta.url).href);
const [backendPort, dir, clientCerts] = [Number(process.argv[2]), process.argv[3], process.argv[4] === "1"];
const tls = {
  cert: readFileSync(`${dir}/server.crt`),
  key: readFileSync(`${dir}/server.key`),
  minVersion: "TLSv1.2",
  ...(clientCerts ? { ca: readFileSync(`${dir}/ca.crt`), verifyClient: "required" } : {}),
};
const proxy = new core.Proxy({
  listeners: [{ name: "https", protocol: "http", host: "127.0.0.1", port: 0, tls }],
  routes: [{ targets: [`127.0.0.1:${backendPort}`] }],
  plugins: [new HttpProtocol()],
  logger: core.silentLogger,
});
await proxy.listen();
serveControl(proxy.address("https").port, () => proxy.close({ timeout: 100 }), () => proxy.stats());
