// The bare Node baseline: the smallest correct `net` pipe, run as its own process.
// argv: targetHost targetPort. Same IPC interface as switchyard-proxy.mjs.
import net from "node:net";
import { serveControl } from "./control.mjs";

const [host, port] = [process.argv[2], Number(process.argv[3])];
const server = net.createServer((c) => {
  const u = net.connect(port, host);
  c.on("error", () => u.destroy());
  u.on("error", () => c.destroy());
  c.pipe(u);
  u.pipe(c);
});
server.listen(0, "127.0.0.1", () => serveControl(server.address().port, () => server.close()));
