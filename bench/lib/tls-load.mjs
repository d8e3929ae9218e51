// HTTPS load generator, its own process. argv[2]: JSON { port, conns, seconds, mode, dir, clientCert }.
// mode "keepalive": each connection sends GET / back to back; "full": a new TLS connection (full
// handshake, TLS 1.3) per request; "resumed": a new connection per request resuming the previous
// session of that loop. Reports { type: "result", requests, connections, resumed, errors }.
import { readFileSync } from "node:fs";
import tls from "node:tls";

const { port, conns, seconds, mode, dir, clientCert } = JSON.parse(process.argv[2]);
const hardStop = setTimeout(() => {
  process.send({ type: "error", error: "tls-load: timed out" });
  process.exit(2);
}, (seconds + 30) * 1000);
process.on("disconnect", () => process.exit(0));

const base = {
  host: "127.0.0.1",
  port,
  servername: "bench.test",
  ca: readFileSync(`${dir}/ca.crt`),
  minVersion: "TLSv1.3",
  ...(clientCert ? { cert: readFileSync(`${dir}/client.crt`), key: readFileSync(`${dir}/client.key`) } : {}),
};
const REQUEST = "GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n";

function open(session) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ ...base, ...(session ? { session } : {}) });
    let latest;
    s.on("session", (t) => (latest = t));
    s.once("secureConnect", () => resolve({ s, session: () => latest }));
    s.once("error", reject);
  });
}

/** one request/response on s (Content-Length responses) */
function exchange(s) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const len = Number(/content-length:\s*(\d+)/i.exec(buf.subarray(0, end).toString("latin1"))?.[1] ?? 0);
      if (buf.length >= end + 4 + len) {
        s.off("data", onData);
        s.off("error", reject);
        s.off("close", onClose);
        resolve(buf.subarray(0, 12).toString("latin1") === "HTTP/1.1 200");
      }
    };
    const onClose = () => reject(new Error("connection closed"));
    s.on("data", onData);
    s.once("error", reject);
    s.once("close", onClose);
    s.write(REQUEST);
  });
}

async function loop(deadline) {
  const r = { requests: 0, connections: 0, resumed: 0, errors: 0 };
  if (mode === "keepalive") {
    let s;
    while (Date.now() < deadline) {
      try {
        if (s === undefined || s.destroyed) {
          s = (await open()).s;
          r.connections++;
        }
        (await exchange(s)) ? r.requests++ : r.errors++;
      } catch {
        r.errors++;
        s?.destroy();
      }
    }
    s?.end();
    return r;
  }
  let session;
  while (Date.now() < deadline) {
    try {
      const c = await open(mode === "resumed" ? session : undefined);
      r.connections++;
      if (c.s.isSessionReused()) r.resumed++;
      (await exchange(c.s)) ? r.requests++ : r.errors++;
      // TLS 1.3 tickets arrive after the handshake: the response has come, so the ticket has too;
      // a server that sent none on a resumed connection leaves the last one in use (as OpenSSL clients do)
      session = c.session() ?? session;
      c.s.end();
      c.s.destroy();
    } catch {
      r.errors++;
    }
  }
  return r;
}

const deadline = Date.now() + seconds * 1000;
const all = await Promise.all(Array.from({ length: conns }, () => loop(deadline)));
clearTimeout(hardStop);
const sum = (k) => all.reduce((a, r) => a + r[k], 0);
process.send({ type: "result", requests: sum("requests"), connections: sum("connections"), resumed: sum("resumed"), errors: sum("errors") });
