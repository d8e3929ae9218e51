// Soak backends, one process: a node:http server (keep-alive) and a raw TCP echo server, both on
// 127.0.0.1 port 0. Sends { type: "ready", port, echoPort }; answers { type: "rss" } with its open
// connection counts (bench/lib/control.mjs).
//   GET /         12 B "hello world!"           GET /big      256 KiB, byte i = i % 251
//   GET /slow     "slow" after 200 ms           GET /reset    head (Content-Length 4096) + 1000 B, then the socket is destroyed
//   GET /chunked  chunked body + X-Checksum trailer   GET /close  12 B with Connection: close
//   POST (any)    reads the body, answers "len=<bytes received>"
//   Upgrade       101, then every byte is echoed (a tunnel)
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { serveControl } from "./control.mjs";

export const SMALL = Buffer.from("hello world!");
export const BIG_LEN = 256 * 1024;
export const bigByte = (i) => i % 251;
const big = Buffer.alloc(BIG_LEN);
for (let i = 0; i < BIG_LEN; i++) big[i] = bigByte(i);
export const CHUNKS = ["alpha-", "bravo-", "charlie-", "delta"];
export const CHECKSUM = "sum-27";

const conns = { http: 0, echo: 0, upgraded: 0 };
const track = (kind) => (s) => {
  conns[kind]++;
  s.once("close", () => conns[kind]--);
};

function handle(req, res) {
  req.on("error", () => {});
  res.on("error", () => {});
  if (req.method === "POST" || req.method === "PUT") {
    let n = 0;
    req.on("data", (d) => (n += d.length));
    req.on("end", () => {
      const body = Buffer.from(`len=${n}`);
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length });
      res.end(body);
    });
    return;
  }
  switch (req.url) {
    case "/big":
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": BIG_LEN });
      return void res.end(big);
    case "/slow": {
      const t = setTimeout(() => {
        res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": 4 });
        res.end("slow");
      }, 200);
      res.once("close", () => clearTimeout(t));
      return;
    }
    case "/reset":
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": 4096 });
      res.write(big.subarray(0, 1000));
      return void setTimeout(() => req.socket.destroy(), 5);
    case "/chunked": {
      res.writeHead(200, { "Content-Type": "text/plain", "Transfer-Encoding": "chunked", Trailer: "X-Checksum" });
      let i = 0;
      const step = () => {
        if (res.destroyed) return;
        if (i < CHUNKS.length) {
          res.write(CHUNKS[i++]);
          setImmediate(step);
        } else {
          res.addTrailers({ "X-Checksum": CHECKSUM });
          res.end();
        }
      };
      return void step();
    }
    case "/close":
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": SMALL.length, Connection: "close" });
      return void res.end(SMALL);
    default:
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": SMALL.length });
      res.end(SMALL);
  }
}

function echo(s) {
  s.on("error", () => {});
  s.on("data", (d) => s.write(d));
  s.on("end", () => s.end());
}

// run as a process (the load generator imports the constants above)
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = http.createServer({ keepAliveTimeout: 60_000, headersTimeout: 30_000, requestTimeout: 0 }, handle);
  server.on("connection", track("http"));
  server.on("clientError", (_e, s) => s.destroy());
  server.on("upgrade", (req, s, head) => {
    s.on("error", () => {});
    conns.upgraded++;
    s.once("close", () => conns.upgraded--);
    s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade ?? "websocket"}\r\nConnection: Upgrade\r\n\r\n`);
    if (head.length) s.write(head);
    echo(s);
  });
  const echoServer = net.createServer({ allowHalfOpen: true }, (s) => {
    track("echo")(s);
    echo(s);
  });
  server.listen(0, "127.0.0.1", () =>
    echoServer.listen(0, "127.0.0.1", () => {
      process.send({ type: "echo", port: echoServer.address().port });
      serveControl(
        server.address().port,
        () => new Promise((r) => (server.closeAllConnections(), echoServer.close(), server.close(r))),
        () => ({ ...conns }),
      );
    }),
  );
}
