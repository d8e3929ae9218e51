/**
 * Seeded fuzz test of the HTTP/1.1 proxy's invariants. Each case is generated from one seed
 * (fuzz-gen.ts): a client byte stream (valid requests, pipelined, often mutated: framing and
 * smuggling shapes, bad bytes, long lines, truncation, early FIN/reset, split at random
 * boundaries with small delays) and, per request, an upstream behaviour of a raw backend (valid
 * CL/chunked/close-delimited responses, 1xx, sloppy 204/304, bad status lines, garbage, resets,
 * truncation, extra bytes, never answering). Cases run CONCURRENCY at a time against one proxy;
 * the backend finds a request's behaviour from its path (/fz/<case>/<index>).
 *
 * Invariants checked per case: the client connection ends within HANG_MS; everything the client
 * received parses as strict HTTP/1.1 responses (fuzz-check.ts) with no leftover bytes; each
 * response is either the upstream's (X-Up names this case and requests in order) or a proxy
 * error from the documented set (text/plain, Content-Length, request id); a valid upstream
 * response reaches the client complete and byte-exact; a request with a documented smuggling
 * shape never reaches the upstream and gets its documented status; a clean case gets every
 * answer in order and the upstream gets every body exactly. Per batch: nothing the proxy
 * forwards is malformed, no uncaught exception, no active connection and no busy pooled socket
 * left. After all: proxy.close() leaves no connection (helpers' close).
 *
 * Environment (for longer local campaigns; the default is the fixed list below):
 *   FUZZ_SEED=<n>   first case seed (default 0x5eed0000); case i uses seed FUZZ_SEED + i
 *   FUZZ_CASES=<n>  number of cases (default 320)
 *   FUZZ_CONCURRENCY=<n>  cases run at once (default 16); use 1 to replay one seed in isolation
 * A failing case prints its seed, mutations, the bytes sent and received; replay it with
 *   FUZZ_SEED=<seed> FUZZ_CASES=1 pnpm test protocol-http
 * (with concurrency, pooled upstream sockets are shared between cases, so a rare failure may
 * need its neighbours: rerun its batch with the original FUZZ_SEED/FUZZ_CASES).
 */
import { expect } from "chai";
import { forEachConcurrently, seedBatches, startRawBackend, waitFor } from "@switchyard/test-utils";
import { backendErrors, count, headsSeen, received, sent, specs, startFuzzBackend, stats, type Backend } from "./fuzz-backend.js";
import { header, parseResponses, type ParsedResponse } from "./fuzz-check.js";
import { runScriptedClient } from "./fuzz-client.js";
import { generateCase, show, type FuzzCase } from "./fuzz-gen.js";
import { rawSocket, startHttpProxy, type Env } from "./helpers.js";

const BASE_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5eed0000;
const CASES = process.env.FUZZ_CASES !== undefined ? Number(process.env.FUZZ_CASES) : 320;
const CONCURRENCY = process.env.FUZZ_CONCURRENCY !== undefined ? Math.max(1, Number(process.env.FUZZ_CONCURRENCY)) : 16;
const BATCH = CONCURRENCY * 4;
/** no client connection may stay open longer than this after its last byte was sent */
const HANG_MS = 6000;

// short timeouts so broken cases end quickly (each is a few hundred ms)
const LISTENER = { headersTimeout: 400, keepAliveTimeout: 500, lingerTimeout: 300, maxHeaderSize: 4096, maxHeaderCount: 50, maxUrlLength: 1024 };
/** request bodies above this get 413 (the generator makes bodies up to 20 000 bytes) */
const MAX_BODY = 16_000;
const ROUTE = { upstreamHeadersTimeout: 400, bodyTimeout: 400, connectTimeout: 1000, maxBodySize: MAX_BODY, pool: { idleTimeout: 1000 } };
/** statuses the proxy itself answers with here (README; errors-response.ts); no taps, one catch-all route */
const PROXY_STATUSES = new Set([400, 405, 408, 413, 414, 417, 431, 502, 503, 504, 505]);
const ERROR_BODY = /^(\d{3}) [^\n]*\nrequest id: \S+\n$/;

interface Outcome {
  failures: string[];
  received: Buffer;
  ms: number;
}

async function runCase(port: number, c: FuzzCase): Promise<Outcome> {
  for (const q of c.reqs) specs.set(q.id, q.up);
  const t0 = Date.now();
  // answers map to requests in order up to the first mutated request (after it, the proxy may see other requests)
  const mutAt = c.mutations.find((m) => m.at !== undefined)?.at ?? Infinity;
  const methodOf = (i: number, r: ParsedResponse): string | undefined => {
    const up = header(r.headers, "x-up");
    const m = up !== undefined ? new RegExp(`^${c.id}\\.(\\d+)$`).exec(up) : null;
    if (m) return headsSeen.get(`${c.id}.${m[1]}`) ?? c.reqs[+m[1]!]?.method;
    return i < mutAt ? c.reqs[i]?.method : undefined;
  };
  // wait for the close; once every request has a complete answer, the client closes its side
  const { received: buf, closed } = await runScriptedClient(port, { pieces: c.pieces, end: c.end, expected: c.reqs.length, methodOf, hangMs: HANG_MS });
  const failures: string[] = [];
  if (!closed) failures.push(`client connection still open ${HANG_MS} ms after the last byte was sent`);
  if (c.end === "reset") return { failures, received: buf, ms: Date.now() - t0 };
  const earlyEnd = c.end === "fin";
  const p = parseResponses(buf, true, methodOf);
  failures.push(...p.errors);
  let lastIdx = -1;
  let finalNo = 0;
  const finals: Array<{ r: ParsedResponse; idx: number | undefined }> = [];
  for (const r of p.responses) {
    const up = header(r.headers, "x-up");
    if (up !== undefined) {
      const m = new RegExp(`^${c.id}\\.(\\d+)$`).exec(up);
      if (!m) {
        if (up !== "unknown" || c.clean) failures.push(`response ${r.status} from another exchange: X-Up ${up} (case ${c.id})`);
        continue;
      }
      const idx = +m[1]!;
      const req = c.reqs[idx]!;
      const script = sent.get(`${c.id}.${idx}`);
      if (r.status < 200 && r.status !== 101) {
        if (req.http10) failures.push(`interim ${r.status} relayed to an HTTP/1.0 client (request ${idx})`);
        if (r.status === 100 && !req.expect && c.clean) failures.push(`100 relayed for request ${idx} without Expect`);
        if (idx < lastIdx) failures.push(`interim response for request ${idx} after the answer to ${lastIdx}`);
        continue;
      }
      if (idx <= lastIdx) failures.push(`answer for request ${idx} after the answer to ${lastIdx} (order)`);
      lastIdx = idx;
      finals.push({ r, idx });
      finalNo++;
      count(`upstream answer ${script?.valid ? "valid" : "broken"} ${r.complete ? "complete" : "cut"}`);
      if (r.status === 101) count("tunnel");
      if (script === undefined) {
        failures.push(`answer for request ${idx} that the upstream never sent`);
        continue;
      }
      if (script.valid && !earlyEnd) {
        if (!r.complete) failures.push(`valid upstream response to request ${idx} reached the client incomplete (${r.body.length}/${script.body.length} bytes)`);
        else if (r.status !== script.status) failures.push(`request ${idx}: status ${r.status}, upstream sent ${script.status}`);
        else if (!r.body.equals(script.body))
          failures.push(`request ${idx}: body differs from the upstream's (${r.body.length} vs ${script.body.length} bytes): got ${show(r.body, 200)} want ${show(script.body, 200)}`);
      }
      if (r.body.length > 0 && !req.http10 && r.framing === "close") failures.push(`close-delimited body to an HTTP/1.1 request (${idx})`);
      if (req.http10 && r.framing === "chunked") failures.push(`chunked body to an HTTP/1.0 request (${idx})`);
    } else {
      // the proxy's own answer
      if (r.status < 200) {
        failures.push(`interim ${r.status} without X-Up: not from the upstream`);
        continue;
      }
      finals.push({ r, idx: undefined });
      finalNo++;
      count(`proxy ${r.status}`);
      if (!PROXY_STATUSES.has(r.status)) failures.push(`proxy answered ${r.status}, not a documented error status`);
      if (header(r.headers, "content-length") === undefined || header(r.headers, "transfer-encoding") !== undefined) failures.push(`proxy error ${r.status} not framed by Content-Length`);
      if (header(r.headers, "x-request-id") === undefined) failures.push(`proxy error ${r.status} without X-Request-Id`);
      if (r.body.length > 0 && r.complete) {
        const m = ERROR_BODY.exec(r.body.toString("utf8"));
        if (!m || +m[1]! !== r.status) failures.push(`proxy error ${r.status} with body ${show(r.body, 200)}`);
      }
    }
  }
  // documented smuggling shapes: rejected with their status, never forwarded
  for (const m of c.mutations) {
    if (m.at === undefined || m.rejects === undefined) continue;
    const id = `${c.id}.${m.at}`;
    if (headsSeen.has(id)) failures.push(`request ${m.at} (${m.name}) reached the upstream`);
    // a truncated stream may have lost the mutated request's end: then 408 (or nothing) is right
    if (c.mutations.some((x) => x.name === "truncated")) continue;
    const answer = finals[m.at];
    if (answer !== undefined) count(`rejection checked`);
    if (answer !== undefined && !earlyEnd && !m.rejects.includes(answer.r.status))
      failures.push(`request ${m.at} (${m.name}) answered ${answer.r.status}${answer.idx !== undefined ? ` by the upstream (X-Up ${c.id}.${answer.idx})` : ""}, expected ${m.rejects.join("/")}`);
    // earlier requests all answered? then this one must have been answered too
    if (answer === undefined && finals.length === m.at && finals.every((f) => f.idx !== undefined && f.r.complete && header(f.r.headers, "connection") !== "close") && !earlyEnd && p.tunnel === undefined)
      failures.push(`request ${m.at} (${m.name}) got no answer`);
  }
  if (c.clean) {
    // every request answered in order; the upstream got every body exactly
    // an answer re-framed close-delimited (an HTTP/1.0 client's chunked or close-delimited
    // upstream body) ends the connection: the requests after it are never answered
    const closedBy = finals.find((f) => f.idx !== undefined && f.r.framing === "close")?.idx;
    const reqs = closedBy === undefined ? c.reqs : c.reqs.slice(0, closedBy + 1);
    // a body over maxBodySize gets 413 (which closes): requests before it are answered by the upstream
    const limitAt = reqs.findIndex((q) => q.body.length > MAX_BODY);
    const answered = limitAt < 0 ? reqs : reqs.slice(0, limitAt);
    const expectAll =
      answered.every((q) => {
        const s = sent.get(q.id);
        return s !== undefined && s.valid && !s.early;
      }) &&
      (limitAt < 0 || reqs[limitAt]!.up.kind !== "early");
    if (expectAll) {
      count(`clean case, all answers checked${limitAt >= 0 ? " (413)" : ""}`);
      const want = limitAt < 0 ? reqs.length : limitAt + 1;
      if (finals.length !== want) failures.push(`clean case: ${finals.length} answers for ${want} requests`);
      finals.forEach((f, i) => {
        if (i === limitAt) {
          if (f.idx !== undefined || f.r.status !== 413) failures.push(`clean case: request ${i} with a ${reqs[i]!.body.length}-byte body answered ${f.r.status}, not the proxy's 413`);
        } else if (f.idx !== i) failures.push(`clean case: answer ${i} is ${f.idx === undefined ? `the proxy's ${f.r.status}` : `for request ${f.idx}`}`);
      });
    }
    for (const q of c.reqs) {
      const got = received.get(q.id);
      if (q.body.length > MAX_BODY) continue;
      if (got !== undefined && sent.get(q.id)?.early !== true && !got.equals(q.body)) failures.push(`request ${q.idx}: upstream got ${got.length} body bytes, client sent ${q.body.length}`);
      if (got === undefined && expectAll && sent.has(q.id)) failures.push(`request ${q.idx}: upstream never got the whole body`);
    }
  }
  return { failures, received: buf, ms: Date.now() - t0 };
}

function describeCase(c: FuzzCase, o: Outcome): string {
  const wire = Buffer.concat(c.pieces.map((p) => p.bytes));
  return [
    `seed ${c.seed} (replay: FUZZ_SEED=${c.seed} FUZZ_CASES=1 FUZZ_CONCURRENCY=1) case ${c.id}, ${o.ms} ms`,
    `  mutations: ${c.mutations.map((m) => `${m.name}${m.at !== undefined ? `@${m.at}` : ""}`).join(", ") || "none"}; end: ${c.end}`,
    `  requests: ${c.reqs.map((q) => `${q.method}${q.http10 ? "/1.0" : ""}${q.chunked ? " chunked" : ""}${q.expect ? " expect" : ""}${q.upgrade ? " upgrade" : ""} → ${q.up.kind}${q.up.interim.length ? `+${q.up.interim.join("+")}` : ""}${q.up.split ? " split" : ""}`).join(" | ")}`,
    `  pieces: ${c.pieces.map((p) => `${p.bytes.length}B+${p.delay}ms`).join(" ")}`,
    `  sent: ${show(wire, 1200)}`,
    `  received: ${show(o.received, 1500)}`,
    ...o.failures.map((f) => `  ✗ ${f}`),
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------

describe("fuzz: protocol-http invariants", function () {
  this.timeout(60_000);
  let backend: Backend;
  let env: Env;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  let inFlight: number[] = [];

  before(async () => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    backend = await startFuzzBackend();
    env = await startHttpProxy([{ name: "fuzz", targets: [`127.0.0.1:${backend.port}`], options: ROUTE }], { listener: LISTENER });
  });

  after(async () => {
    process.off("uncaughtException", onUncaught);
    if (process.env.FUZZ_STATS) console.log([...stats].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n"));
    process.off("unhandledRejection", onUncaught);
    try {
      if (env !== undefined) {
        const busy = env.protocol.poolStats(env.proxy.proxy).reduce((n, p) => n + p.open - p.idle, 0);
        expect(busy, "busy pooled sockets after all cases").to.equal(0);
        await env.close(); // asserts no active connection is left
        // destroyed sockets leave their pool on their 'close' event
        const open = () => env.protocol.poolStats(env.proxy.proxy).reduce((n, p) => n + p.open, 0);
        await waitFor(() => open() === 0, 2000, "pooled sockets closed").catch(() => expect(open(), "pooled sockets after close").to.equal(0));
      }
    } finally {
      await backend?.close();
    }
  });

  for (const { first, seeds } of seedBatches(BASE_SEED, CASES, BATCH)) {
    it(`cases ${first}..${first + seeds.length - 1} (seeds ${seeds[0]}..${seeds[seeds.length - 1]})`, async () => {
      const reports: string[] = [];
      backendErrors.length = 0;
      await forEachConcurrently(seeds, CONCURRENCY, async (seed) => {
        const c = generateCase(seed);
        inFlight.push(seed);
        const before = uncaught.length;
        const o = await runCase(env.port, c);
        inFlight = inFlight.filter((s) => s !== seed);
        if (uncaught.length > before) o.failures.push(`uncaught exception while this case ran: ${String((uncaught[before] as Error)?.stack ?? uncaught[before])}`);
        if (o.failures.length > 0) reports.push(describeCase(c, o));
        for (const q of c.reqs) {
          specs.delete(q.id);
          sent.delete(q.id);
          received.delete(q.id);
          headsSeen.delete(q.id);
        }
      });
      // the batch is over: no connection and no busy upstream socket may be left behind
      const proxy = env.proxy.proxy;
      try {
        await waitFor(() => proxy.stats().active === 0 && proxy.connections.size === 0, 3000, "no active connections");
      } catch {
        reports.push(`after the batch: active connections ${JSON.stringify(proxy.stats())}`);
      }
      try {
        await waitFor(() => env.protocol.poolStats(proxy).every((p) => p.open === p.idle && p.queued === 0), 3000, "no busy pooled sockets");
      } catch {
        reports.push(`after the batch: busy pooled sockets ${JSON.stringify(env.protocol.poolStats(proxy))}`);
      }
      if (backendErrors.length > 0) reports.push(`the upstream got malformed requests:\n  ${backendErrors.join("\n  ")}`);
      if (uncaught.length > 0) reports.push(`uncaught: ${uncaught.map((e) => String((e as Error)?.stack ?? e)).join("\n")}`);
      if (reports.length > 0) {
        expect.fail(`${reports.length} failing case(s) in seeds ${seeds[0]}..${seeds[seeds.length - 1]}:\n\n${reports.join("\n\n")}`);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// focused regressions for what the fuzzer found (seeds 1592590570 and 1592590376 of the list above)

describe("fuzz findings", () => {
  it("answers a HEAD request's upstream failure without an error body, so the keep-alive connection stays in sync", async () => {
    const backend = await startRawBackend((req, socket) => {
      if (req.requestLine.startsWith("HEAD")) socket.write("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n");
      else socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    try {
      const c = await rawSocket(env.port);
      c.socket.write("HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
      await c.closed;
      const p = parseResponses(Buffer.from(c.received(), "latin1"), true, (i) => (i === 0 ? "HEAD" : "GET"));
      expect(p.errors, c.received()).to.deep.equal([]);
      expect(p.responses.map((r) => r.status)).to.deep.equal([502, 200]);
      expect(header(p.responses[0]!.headers, "content-length")).to.match(/^\d+$/);
      expect(p.responses[1]!.body.toString()).to.equal("ok");
    } finally {
      await env.close();
      await backend.close();
    }
  });

  it("sends repeated identical upstream Content-Lengths down as one", async () => {
    const backend = await startRawBackend((_req, socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\nX-A: b\r\n\r\nabc"));
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    try {
      const c = await rawSocket(env.port);
      c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
      await c.closed;
      const p = parseResponses(Buffer.from(c.received(), "latin1"), true, () => "GET");
      expect(p.errors, c.received()).to.deep.equal([]);
      expect(p.responses.map((r) => r.body.toString())).to.deep.equal(["abc", "abc"]);
      expect(c.received().match(/content-length/gi)).to.have.length(2);
      expect(c.received()).to.include("X-A: b\r\n");
    } finally {
      await env.close();
      await backend.close();
    }
  });
});
