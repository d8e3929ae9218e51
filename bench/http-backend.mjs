// HTTP bench backend, its own process: node:http with keep-alive, "/" answers 12 bytes and
// "/big" 64 KiB, both with Content-Length.
import http from "node:http";
import { serveControl } from "./lib/control.mjs";

const small = Buffer.from("hello world!");
const big = Buffer.alloc(64 * 1024, 120);
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const body = req.url === "/big" ? big : small;
  res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length });
  res.end(body);
});
server.listen(0, "127.0.0.1", () => serveControl(server.address().port, () => server.close()));
