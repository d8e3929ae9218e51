// Soak load generator (bench/soak.mjs), its own process. argv[2]: JSON
//   { web, echo, seconds, conns, seed, headersTimeout, tcpIdle }
// Runs `conns` loops for `seconds`, each one scenario after another; 1 loop in 8 is a "slow"
// lane (slowloris, backpressure, idle TCP: scenarios that hold a connection for seconds), the
// others run the fast mix. Every scenario is bounded (SCENARIO_MS, then its sockets are destroyed
// and it counts as a failure). Outcomes are counted per scenario; "FAIL:..." ones are failures.
// Reports { type: "result", counts, failures, requests, echoed, ms } over IPC.
import http from "node:http";
import { randomBytes } from "node:crypto";
import { HOST, raw, readResponses, MALFORMED, get, Body } from "./soak-raw.mjs";
import { BIG_LEN, CHUNKS, CHECKSUM } from "./soak-backend.mjs";
import { seededRandom } from "../../packages/test-utils/dist/fuzz.js";

const task = JSON.parse(process.argv[2]);
process.on("disconnect", () => process.exit(0));
const SCENARIO_MS = 12_000;
const SLACK_MS = 3000; // timer lateness allowed on a loaded 2-core machine

// the mix is seeded (the interleaving is not): the test-utils PRNG, built by `pnpm soak`'s build
const rand = seededRandom(task.seed >>> 0 || 1);
const between = (a, b) => a + Math.floor(rand() * (b - a + 1));
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fail = (kind, detail = "") => ({ outcome: `FAIL:${kind}`, detail });
const DATA = randomBytes(300 * 1024);
const slice = (n) => {
  const off = between(0, DATA.length - n);
  return DATA.subarray(off, off + n);
};

const agent = new http.Agent({ keepAlive: true, maxSockets: task.conns, timeout: 1500 });
const counts = {};
const failures = [];
let requests = 0;
let echoed = 0;
const t0 = Date.now();

// ---- HTTP through node:http
const EXPECT = { "/": "hello world!", "/close": "hello world!", "/slow": "slow", "/chunked": CHUNKS.join("") };

function request(ctx, opts, body) {
  return new Promise((resolve) => {
    const req = http.request({ host: HOST, port: task.web, agent, ...opts }, (res) => {
      const b = new Body();
      res.on("error", () => {});
      res.on("data", (d) => b.add(d));
      res.on("end", () => resolve({ status: res.statusCode, body: b, trailers: res.trailers }));
      res.on("close", () => res.complete || resolve({ status: res.statusCode, body: b, aborted: true }));
    });
    ctx.track(req);
    req.on("error", (e) => resolve({ error: e.code ?? e.message, reused: req.reusedSocket }));
    requests++;
    if (body === undefined) return void req.end();
    if (opts.headers?.Expect) return void req.on("continue", () => req.end(body));
    const parts = between(1, 4);
    const step = Math.ceil(body.length / parts) || 1;
    for (let i = 0; i < body.length; i += step) req.write(body.subarray(i, i + step));
    req.end();
  });
}

/** an http error that is the client's own keep-alive race, not the proxy's fault */
const transportError = (r) => (r.reused && (r.error === "ECONNRESET" || r.error === "EPIPE") ? "ka-race" : fail(`error-${r.error}`));

async function getRoute(ctx) {
  const path = pick(["/", "/", "/big", "/big", "/slow", "/chunked", "/close", "/reset"]);
  const r = await request(ctx, { path, agent: chance(0.1) ? false : agent });
  const name = `${path}`;
  if (path === "/reset") {
    if (r.error) return r.reused ? "ka-race" : "reset-before-head";
    if (r.status === 502) return "502";
    if (r.aborted && r.body.len < 4096) return "aborted-as-expected";
    return fail("reset-not-aborted", `${name} status ${r.status} len ${r.body.len}`);
  }
  if (r.error) return transportError(r);
  if (r.status !== 200) return fail(`status-${r.status}`, name);
  if (r.aborted) return fail("aborted", `${name} after ${r.body.len} B`);
  if (path === "/big") return r.body.isBig() ? "ok" : fail("big-body", `len ${r.body.len} pattern ${r.body.patternOk}`);
  if (r.body.text() !== EXPECT[path]) return fail("body", `${name}: ${JSON.stringify(r.body.text())}`);
  if (path === "/chunked" && r.trailers["x-checksum"] !== CHECKSUM) return fail("trailer", JSON.stringify(r.trailers));
  return "ok";
}

async function post(ctx) {
  const n = pick([0, between(1, 2000), between(2000, DATA.length)]);
  const kind = n > 0 && chance(0.1) ? "expect" : chance(0.4) ? "chunked" : "length";
  const headers = kind === "chunked" ? {} : { "Content-Length": n };
  if (kind === "expect") headers.Expect = "100-continue";
  const r = await request(ctx, { method: "POST", path: "/upload", headers }, slice(n));
  if (r.error) return transportError(r);
  if (r.status !== 200 || r.aborted) return fail(`status-${r.status}${r.aborted ? "-aborted" : ""}`, kind);
  return r.body.text() === `len=${n}` ? `ok-${kind}` : fail("post-length", `${kind} sent ${n}, backend got ${r.body.text()}`);
}

// ---- raw HTTP
function writeInPieces(s, buf, pieces) {
  const cuts = [...Array(pieces - 1)].map(() => between(1, buf.length - 1)).sort((a, b) => a - b);
  let from = 0;
  for (const c of [...cuts, buf.length]) {
    const part = buf.subarray(from, c);
    from = c;
    setImmediate(() => s.destroyed || s.write(part));
  }
}

function checkRaw(res, path) {
  if (res.status !== 200) return `status ${res.status} for ${path}`;
  if (path === "/big") return res.body.isBig() ? undefined : `big body len ${res.body.len} pattern ${res.body.patternOk}`;
  if (res.body.text() !== EXPECT[path]) return `body ${JSON.stringify(res.body.text())} for ${path}`;
  if (path === "/chunked" && res.trailers["x-checksum"] !== CHECKSUM) return `trailers ${JSON.stringify(res.trailers)}`;
}

async function pipeline(ctx) {
  const paths = [...Array(between(2, 6))].map(() => pick(["/", "/", "/chunked", "/slow", "/big"]));
  const close = chance(0.5);
  const s = raw(task.web, ctx.track);
  const bytes = Buffer.concat(paths.map((p, i) => get(p, close && i === paths.length - 1 ? ["Connection: close"] : [])));
  writeInPieces(s, bytes, between(1, 3));
  requests += paths.length;
  const r = await readResponses(s, paths.length, { waitClose: close });
  if (r.responses.length < paths.length) return fail("pipeline-short", `${r.responses.length}/${paths.length} (${r.error ?? "closed"}) ${paths.join(" ")}`);
  for (let i = 0; i < paths.length; i++) {
    const bad = checkRaw(r.responses[i], paths[i]);
    if (bad) return fail("pipeline-response", `#${i}: ${bad}`);
  }
  if (close && !r.closed) return fail("pipeline-not-closed", r.error);
  return close ? "ok-closed" : "ok";
}

async function abortRequest(ctx) {
  const s = raw(task.web, ctx.track);
  const kind = pick(["head", "length-body", "chunked-body"]);
  const bytes =
    kind === "head"
      ? get("/", ["X-Pad: " + "p".repeat(200)])
      : kind === "length-body"
        ? Buffer.concat([Buffer.from("POST /up HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n"), slice(between(0, 50_000))])
        : Buffer.concat([Buffer.from("POST /up HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n"), slice(between(0, 0x3fff))]);
  s.write(kind === "head" ? bytes.subarray(0, between(1, bytes.length - 1)) : bytes);
  await sleep(between(0, 30));
  if (!chance(0.3)) return void s.destroy(), `destroyed-${kind}`;
  // half-close (FIN) with the request incomplete: the proxy must close the connection
  s.end();
  const r = await readResponses(s, Infinity, { waitClose: true, timeoutMs: task.headersTimeout + SLACK_MS });
  return r.closed ? `fin-closed-${kind}` : fail("fin-not-closed", `${kind}: ${r.error}`);
}

async function abortResponse(ctx) {
  const s = raw(task.web, ctx.track);
  const path = pick(["/big", "/big", "/slow", "/chunked"]);
  const n = path === "/big" ? between(1, 4) : 1;
  s.write(Buffer.concat([...Array(n)].map(() => get(path))));
  requests += n;
  if (path === "/big") {
    const stopAt = between(0, n * BIG_LEN);
    await new Promise((resolve) => {
      let got = 0;
      s.on("data", (d) => (got += d.length) >= stopAt && resolve());
      s.on("close", resolve);
    });
  } else await sleep(between(0, 250));
  s.destroy();
  return `destroyed-${path.slice(1)}`;
}

async function malformed(ctx) {
  const m = pick(MALFORMED);
  const s = raw(task.web, ctx.track);
  writeInPieces(s, m.bytes, between(1, 2));
  const r = await readResponses(s, 1, { waitClose: m.close });
  if (r.responses.length === 0) return fail(`${m.name}-no-answer`, r.error ?? "closed");
  if (r.responses[0].status !== m.status) return fail(`${m.name}-status-${r.responses[0].status}`);
  if (m.close && !r.closed) return fail(`${m.name}-not-closed`);
  if (r.responses.length > 1) return fail(`${m.name}-extra-response`, `${r.responses.length} responses`);
  return `${m.name}-${m.status}`;
}

async function upgrade(ctx) {
  const s = raw(task.web, ctx.track);
  s.write(get("/ws", ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: c29hay1zb2FrLXNvYWs="]));
  requests++;
  const r = await readResponses(s, 1);
  if (r.responses[0]?.status !== 101) return fail(`upgrade-status-${r.responses[0]?.status ?? r.error ?? "none"}`);
  return echoThrough(s, r.reader.tunnel, "tunnel");
}

// ---- TCP (the echo listener), and the tunnel's byte stream
async function echoThrough(s, already, label) {
  const out = slice(pick([between(1, 100), between(100, 16_384), between(16_384, 256 * 1024)]));
  const mode = pick(["end", "end", "destroy", "destroy", "abort", "fin-first"]);
  const stopAt = mode === "abort" ? between(0, out.length) : Infinity;
  const result = new Promise((resolve) => {
    let got = 0;
    const onData = (d) => {
      if (!d.equals(out.subarray(got, got + d.length))) resolve(fail(`${label}-mismatch`, `at ${got} of ${out.length}`));
      got += d.length;
      echoed += d.length;
      if (got >= stopAt) resolve("aborted");
      else if (got === out.length) resolve("complete");
    };
    for (const d of already ?? []) onData(d);
    s.on("data", onData);
    s.on("close", () => resolve(fail(`${label}-short`, `${got} of ${out.length} (${s.soakError?.code ?? "closed"})`)));
  });
  writeInPieces(s, out, between(1, 6));
  if (mode === "fin-first") setImmediate(() => setImmediate(() => s.end()));
  const r = await result;
  if (typeof r !== "string") return r;
  if (r === "aborted" || mode === "destroy") return void s.destroy(), `${r === "aborted" ? "aborted" : "ok-destroy"}`;
  if (mode === "end") s.end();
  // after our FIN (and the full echo), the proxy must pass the FIN on and close
  const closed = await readResponses(s, Infinity, { waitClose: true, timeoutMs: 5000 });
  return closed.closed ? `ok-${mode}` : fail(`${label}-no-close`, closed.error);
}

async function tcpEcho(ctx) {
  const s = raw(task.echo, ctx.track);
  return echoThrough(s, [], "echo");
}

// ---- slow lane
async function slowloris(ctx) {
  const kind = pick(["half-head", "trickle", "silent", "after-keepalive"]);
  const s = raw(task.web, ctx.track);
  let start = Date.now();
  if (kind === "after-keepalive") {
    s.write(get("/"));
    requests++;
    const first = await readResponses(s, 1);
    if (first.responses[0]?.status !== 200) return fail("slowloris-first-request", String(first.responses[0]?.status ?? first.error));
    start = Date.now();
  }
  if (kind === "half-head" || kind === "after-keepalive") s.write("GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ");
  let trickle;
  if (kind === "trickle") {
    s.write("GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ");
    trickle = setInterval(() => s.destroyed || s.write("a"), 300);
  }
  const r = await readResponses(s, 1, { waitClose: true, timeoutMs: task.headersTimeout + SLACK_MS + 1000 });
  clearInterval(trickle);
  const ms = Date.now() - start;
  if (r.responses[0]?.status !== 408) return fail(`slowloris-${kind}-not-408`, `${r.responses[0]?.status ?? r.error ?? "closed"} after ${ms} ms`);
  if (!r.closed) return fail(`slowloris-${kind}-not-closed`, r.error);
  if (ms < task.headersTimeout - 100) return fail(`slowloris-${kind}-cut-early`, `${ms} ms`);
  if (ms > task.headersTimeout + SLACK_MS) return fail(`slowloris-${kind}-cut-late`, `${ms} ms`);
  return `cut-408-${kind}`;
}

async function backpressure(ctx) {
  const s = raw(task.web, ctx.track);
  const n = between(1, 4);
  s.write(Buffer.concat([...Array(n)].map(() => get("/big"))));
  requests += n;
  s.pause();
  const reading = readResponses(s, n);
  s.pause(); // readResponses' "data" listener resumed it
  await sleep(between(200, 2000));
  if (chance(0.4)) return void s.destroy(), "paused-then-destroyed";
  s.resume();
  const r = await reading;
  if (r.responses.length < n) return fail("backpressure-short", `${r.responses.length}/${n} (${r.error ?? "closed"})`);
  const bad = r.responses.map((x) => checkRaw(x, "/big")).find(Boolean);
  return bad ? fail("backpressure-body", bad) : "paused-then-read";
}

async function tcpIdle(ctx) {
  const s = raw(task.echo, ctx.track);
  await new Promise((r) => (s.once("connect", r), s.once("close", r)));
  const start = Date.now();
  await new Promise((r) => (s.destroyed ? r() : s.once("close", r)));
  const ms = Date.now() - start;
  if (ms < task.tcpIdle - 100) return fail("tcp-idle-cut-early", `${ms} ms ${s.soakError?.code ?? ""}`);
  return ms > task.tcpIdle + SLACK_MS ? fail("tcp-idle-cut-late", `${ms} ms`) : "idle-cut";
}

const FAST = [...Array(28).fill(getRoute), ...Array(10).fill(post), ...Array(8).fill(pipeline), ...Array(6).fill(abortRequest),
  ...Array(6).fill(abortResponse), ...Array(8).fill(malformed), ...Array(4).fill(upgrade), ...Array(18).fill(tcpEcho)];
const SLOW = [...Array(9).fill(slowloris), ...Array(8).fill(backpressure), ...Array(3).fill(tcpIdle)];

async function runOne(fn) {
  const sockets = [];
  const ctx = { track: (s) => sockets.push(s) };
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(() => r(fail("scenario-timeout", `${SCENARIO_MS} ms`)), SCENARIO_MS)));
  let res;
  try {
    res = await Promise.race([fn(ctx), timeout]);
  } catch (e) {
    res = fail("threw", e?.stack ?? String(e));
  }
  clearTimeout(timer);
  for (const s of sockets) s.destroy();
  const { outcome, detail } = typeof res === "string" ? { outcome: res } : res;
  const c = (counts[fn.name] ??= {});
  c[outcome] = (c[outcome] ?? 0) + 1;
  if (outcome.startsWith("FAIL") && failures.length < 40) failures.push({ t: (Date.now() - t0) / 1000, scenario: fn.name, outcome, detail });
}

const until = t0 + task.seconds * 1000;
async function lane(mix) {
  while (Date.now() < until) await runOne(pick(mix));
}
const slowLanes = Math.max(1, Math.round(task.conns / 8));
await Promise.all([...Array(task.conns)].map((_, i) => lane(i < slowLanes ? SLOW : FAST)));
agent.destroy();
process.send({ type: "result", counts, failures, requests, echoed, ms: Date.now() - t0 });
