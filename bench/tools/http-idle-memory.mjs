// Memory per idle HTTP keep-alive client connection in a proxy process: N clients each make one
// request through the proxy and keep their connection open; the proxy's RSS and heap growth
// (after forced GCs) divided by N. Usage (after pnpm build):
//   node bench/tools/http-idle-memory.mjs [switchyard|node-http-proxy|fastify] [N=5000]
// BENCH_HEAP_SNAPSHOTS=<dir> also writes heap snapshots before/while holding (see heap-per-conn.mjs
// for reading them; the snapshots inflate RSS).
import net from "node:net";
import { startServer } from "../lib/proc.mjs";

const kind = process.argv[2] ?? "switchyard";
const N = Number(process.argv[3] ?? 5000);
const backend = await startServer("../http-backend.mjs");
const proxy = await startServer("../http-proxy.mjs", [kind, String(backend.port)], { flags: ["--expose-gc"] });

/** one keep-alive client after one complete request/response */
const client = () =>
  new Promise((resolve, reject) => {
    const s = net.connect(proxy.port, "127.0.0.1");
    s.on("error", reject);
    s.once("connect", () => s.write("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    let got = "";
    s.on("data", (d) => {
      got += d;
      const end = got.indexOf("\r\n\r\n");
      const len = /content-length: (\d+)/i.exec(got)?.[1];
      if (end >= 0 && len !== undefined && got.length >= end + 4 + Number(len)) {
        s.removeAllListeners("data");
        resolve(s);
      }
    });
  });

try {
  for (let i = 0; i < 200; i++) (await client()).destroy(); // warm-up
  await new Promise((r) => setTimeout(r, 200));
  const before = await proxy.rss();
  const held = [];
  for (let i = 0; i < N; i += 50) held.push(...(await Promise.all(Array.from({ length: Math.min(50, N - i) }, client))));
  const after = await proxy.rss();
  const kb = (a, b) => ((b - a) / N / 1024).toFixed(2);
  console.log(`${kind}: ${N} idle keep-alive clients; RSS ${kb(before.rss, after.rss)} KB/conn, heap used ${kb(before.heapUsed, after.heapUsed)} KB/conn`);
  for (const s of held) s.destroy();
} finally {
  await proxy.stop();
  await backend.stop();
}
