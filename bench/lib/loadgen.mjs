// Load generator, always its own process (never inside the proxy under test).
// argv[2]: JSON task. Reports over IPC. Every loop is bounded in count and in time.
//   { mode: "bulk", host, port, conns, bytes, timeoutMs }
//       each of `conns` connections sends bytes/conns to the sink, waits for its ack.
//   { mode: "cps", host, port, concurrency, durationMs, timeoutMs }
//       loops: connect, write 8 bytes, read 8 back, close; counts completions and latencies.
//   { mode: "idle", host, port, n, concurrency, timeoutMs }
//       opens n connections that each do one 8-byte round trip, then holds them;
//       reports "held", closes everything on { type: "release" }.
import net from "node:net";

const task = JSON.parse(process.argv[2]);
const hardStop = setTimeout(() => {
  process.send({ type: "error", error: `loadgen: timed out after ${task.timeoutMs} ms` });
  process.exit(2);
}, task.timeoutMs ?? 60_000);
process.on("disconnect", () => process.exit(0));

const PING = Buffer.from("E-bench!"); // 8 bytes, "E" = echo mode

function connect(host, port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** Writes PING, resolves when 8 bytes came back. */
function roundTrip(s) {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (d) => {
      got += d.length;
      if (got >= 8) {
        cleanup();
        resolve();
      }
    };
    const onErr = (e) => {
      cleanup();
      reject(e);
    };
    const onClose = () => onErr(new Error("closed before the echo"));
    function cleanup() {
      s.off("data", onData);
      s.off("error", onErr);
      s.off("close", onClose);
    }
    s.on("data", onData);
    s.on("error", onErr);
    s.on("close", onClose);
    s.write(PING);
  });
}

async function bulkOne(host, port, bytes, chunk) {
  const s = await connect(host, port);
  return new Promise((resolve, reject) => {
    s.on("error", reject);
    let acked = 0;
    s.on("data", (d) => {
      acked += d.length;
      if (acked >= 8) {
        s.destroy();
        resolve();
      }
    });
    const hdr = Buffer.alloc(9);
    hdr[0] = 0x53; // "S" = sink mode
    hdr.writeBigUInt64BE(BigInt(bytes), 1);
    s.write(hdr);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once("drain", pump);
      }
    };
    pump();
  });
}

async function bulk({ host, port, conns, bytes }) {
  const per = Math.floor(bytes / conns);
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conns }, () => bulkOne(host, port, per, chunk)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const total = per * conns;
  return { bytes: total, seconds, gbps: (total * 8) / seconds / 1e9 };
}

async function cps({ host, port, concurrency, durationMs }) {
  const lat = [];
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const MAX = 5_000_000; // bound on iterations, whatever the speed
  async function loop() {
    while (performance.now() < deadline && lat.length + errors < MAX) {
      const a = performance.now();
      let s;
      try {
        s = await connect(host, port);
        await roundTrip(s);
        lat.push(performance.now() - a);
      } catch {
        errors++;
      } finally {
        s?.destroy();
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((x, y) => x - y);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
  return { conns: lat.length, errors, seconds, cps: lat.length / seconds, p50ms: q(0.5), p99ms: q(0.99) };
}

async function idle({ host, port, n, concurrency }) {
  const held = [];
  let errors = 0;
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      try {
        const s = await connect(host, port);
        s.on("error", () => {});
        await roundTrip(s);
        held.push(s);
      } catch {
        errors++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.send({ type: "held", held: held.length, errors });
  await new Promise((r) => process.once("message", r));
  for (const s of held) s.destroy();
  return { held: held.length, errors };
}

const modes = { bulk, cps, idle };
try {
  const result = await modes[task.mode](task);
  process.send({ type: "result", ...result }, () => process.exit(0));
} catch (err) {
  process.send({ type: "error", error: String(err?.stack ?? err) }, () => process.exit(1));
}
clearTimeout(hardStop);
