// Switchyard with one smtp listener (routing by EHLO, every name to one backend), its own process
// for the SMTP bench. argv: backendPort.
import { serveControl } from "./control.mjs";

const core = await import(new URL("../../packages/core/dist/index.js", import.meta.url).href);
const { SmtpProtocol } = await import(new URL("../../packages/protocol-smtp/dist/index.js", import.meta.url).href);
const proxy = new core.Proxy({
  listeners: [{ name: "mail", protocol: "smtp", host: "127.0.0.1", port: 0 }],
  routes: [{ name: "all", listener: "mail", match: { ehlo: "*" }, targets: [`127.0.0.1:${process.argv[2]}`] }],
  plugins: [new SmtpProtocol({ hostname: "proxy.bench" })],
  logger: core.silentLogger,
});
await proxy.listen();
serveControl(proxy.address("mail").port, () => proxy.close({ timeout: 100 }), () => proxy.stats());
