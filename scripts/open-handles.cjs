// Mocha root hook plugin (loaded with --require by scripts/test.mjs): after the last test, what
// still keeps the event loop alive beyond what was there before the first one must close within
// a few seconds, or the run fails with a list of it (sockets with their addresses, servers,
// timers with their duration and callback). The suite runs without --exit, so a leak shows as
// this failure instead of being cut off; after reporting it the process ends anyway (timers
// cannot be listed or unref'd from here, so an unref'd exit timer does it).
const IGNORED = new Set(["TTYWrap", "FSReqCallback", "CloseReq", "PipeWrap"]);
const WAIT_MS = 5000;

function counts() {
  const m = new Map();
  for (const r of process.getActiveResourcesInfo()) {
    if (!IGNORED.has(r)) m.set(r, (m.get(r) ?? 0) + 1);
  }
  return m;
}

// mocha arms one timer of its own for the hook that is running
function extra(baseline, allowTimers) {
  const now = counts();
  now.set("Timeout", Math.max(0, (now.get("Timeout") ?? 0) - allowTimers));
  const out = [];
  for (const [k, n] of now) if (n > (baseline.get(k) ?? 0)) out.push(`${k} x${n - (baseline.get(k) ?? 0)}`);
  return out;
}

function describe(h) {
  const name = h?.constructor?.name ?? typeof h;
  if (name === "Socket" || name === "TLSSocket") {
    return `${name} ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}${h.destroyed ? " (destroyed)" : ""}`;
  }
  if (name === "Server") {
    const a = h.address?.();
    return `Server listening on ${a && typeof a === "object" ? `${a.address}:${a.port}` : String(a)}`;
  }
  if (name === "Timeout") return `Timeout ${h._idleTimeout}ms ${(h._onTimeout?.name || String(h._onTimeout)).slice(0, 120)}`;
  return name;
}

let baseline;
exports.mochaHooks = {
  beforeAll() {
    baseline = counts();
  },
  async afterAll() {
    this.timeout(WAIT_MS + 5000);
    const deadline = Date.now() + WAIT_MS;
    while (extra(baseline, 1).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const left = extra(baseline, 1);
    if (left.length === 0) return;
    const handles = process._getActiveHandles().filter((h) => h !== process.stdin && h !== process.stdout && h !== process.stderr);
    const detail = handles.map(describe);
    // fires only while the leak keeps the loop alive, after mocha's reporter has finished
    setTimeout(() => process.exit(process.exitCode || 1), 2000).unref();
    throw new Error(`still open ${WAIT_MS} ms after the last test: ${left.join(", ")}\n  ${detail.join("\n  ")}`);
  },
};
