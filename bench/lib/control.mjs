// IPC control shared by the proxy processes: "ready" with the port, then answers
// { type: "rss" } with the process's own RSS after forced full GCs (needs --expose-gc).
export function serveControl(port, close, stats) {
  process.on("message", async (msg) => {
    if (msg?.type === "rss") {
      for (let i = 0; i < 3; i++) {
        globalThis.gc?.();
        await new Promise((r) => setTimeout(r, 20));
      }
      // bench/tools/heap-per-conn.mjs: a heap snapshot at each measurement
      if (process.env.BENCH_HEAP_SNAPSHOTS) {
        const { writeHeapSnapshot } = await import("node:v8");
        writeHeapSnapshot(`${process.env.BENCH_HEAP_SNAPSHOTS}/${Date.now()}-${process.pid}.heapsnapshot`);
      }
      const m = process.memoryUsage();
      process.send({ type: "rss", rss: m.rss, heapUsed: m.heapUsed, external: m.external, gc: !!globalThis.gc, stats: stats?.() });
    } else if (msg?.type === "stop") {
      await close();
      process.exit(0);
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ type: "ready", port });
}
