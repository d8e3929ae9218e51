/**
 * Seeded fuzz test of the edges fuzz.test.ts barely reaches (cases: fuzz-edges-gen.ts):
 *  - Upgrade tunnels: the upstream answers 101 (split or not, with tunnel bytes in the same
 *    write), then writes, half-closes first, waits for the client's FIN and echoes, or resets;
 *    the client sends bytes right behind its request, more after the 101, then FIN / waits for
 *    the upstream's FIN / resets. Or the upstream refuses (200/400/404/426): the connection stays
 *    plain HTTP (a pipelined or later GET is answered in step).
 *  - Expect: 100-continue (relay and "answer" routes): upstreams that send 100 then answer, answer
 *    at once (417/401/200/413), wait for the body without a 100, or never answer; clients that
 *    send the body early or wait for 100 / an answer / a timer; CL and chunked bodies.
 *  - TLS: a batch of fuzz-gen.ts cases over a TLS listener, and clients that drop mid-handshake
 *    or mid-request.
 * Invariants: nothing hangs; what the client gets parses strictly (fuzz-check.ts); tunnel bytes
 * arrive byte-exact and in order both ways (a prefix when a side resets), FINs are passed on,
 * a reset ends both sides; one final answer per request (interims only 100/103 from the
 * upstream, or one 100 of the proxy's own on the "answer" route), byte-exact; a body the
 * upstream read is byte-exact; keep-alive stays in step (a follow-up GET is answered); no
 * uncaught exception, no active connection or busy pooled socket after a batch.
 *
 *   FUZZ_SEED=<n> FUZZ_CASES=<n> (default 0xed9e0000, 320 edge + 64 TLS cases; FUZZ_CASES=n runs n edge + n/3 TLS); FUZZ_CONCURRENCY=<n> (default 16)
 * A failing case prints its seed and bytes; replay: FUZZ_SEED=<seed> FUZZ_CASES=1 FUZZ_CONCURRENCY=1 pnpm test protocol-http
 */
import { expect } from "chai";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import tls from "node:tls";
import { createTestCa, forEachConcurrently, seedBatches, sleep, waitFor } from "@switchyard/test-utils";
import { header, parseResponses, type ParsedResponse } from "./fuzz-check.js";
import { backendErrors, count, headsSeen, received, sent, specs, startFuzzBackend, stats } from "./fuzz-backend.js";
import { generateCase, show, type FuzzCase } from "./fuzz-gen.js";
import { bodies, generateEdgeCase, heads, plans, startEdgeBackend, tunnels, upErrors, written, type EdgeCase } from "./fuzz-edges-gen.js";
import { startHttpProxy, type Env } from "./helpers.js";

const BASE_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0xed9e0000;
const CASES = process.env.FUZZ_CASES !== undefined ? Number(process.env.FUZZ_CASES) : 320;
const TLS_CASES = process.env.FUZZ_CASES !== undefined ? Math.ceil(CASES / 3) : 64;
const CONCURRENCY = process.env.FUZZ_CONCURRENCY !== undefined ? Math.max(1, Number(process.env.FUZZ_CONCURRENCY)) : 16;
const BATCH = CONCURRENCY * 4;
const HANG_MS = 6000;
const LISTENER = { headersTimeout: 400, keepAliveTimeout: 500, lingerTimeout: 300, maxHeaderSize: 4096 };
const ROUTE = { upstreamHeadersTimeout: 400, bodyTimeout: 400, connectTimeout: 1000, pool: { idleTimeout: 1000 } };

type Outcome = { failures: string[]; received: Buffer; sent: Buffer[]; ms: number };

/** a client socket that records everything, its FIN and its close */
function client(s: Socket) {
  const chunks: Buffer[] = [];
  const st = { fin: false, closed: false, sent: [] as Buffer[] };
  s.on("error", () => {});
  s.on("data", (b: Buffer) => chunks.push(b));
  s.on("end", () => (st.fin = true));
  const closed = new Promise<void>((r) => s.once("close", () => ((st.closed = true), r())));
  const write = (b: Buffer) => {
    if (!s.destroyed && !s.writableEnded) (st.sent.push(b), s.write(b));
  };
  const buf = () => Buffer.concat(chunks);
  /** waits for `cond` (polled), the close or `ms` */
  const until = async (cond: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!cond() && !st.closed && Date.now() < end) await Promise.race([sleep(5), closed]);
    return cond();
  };
  return { st, closed, write, buf, until };
}

const finals = (rs: ParsedResponse[]) => rs.filter((r) => r.status >= 200 || r.status === 101);

async function runEdge(port: number, c: EdgeCase): Promise<Outcome> {
  const t0 = Date.now();
  const id0 = `${c.id}.0`;
  const id1 = `${c.id}.1`;
  plans.set(id0, c.plan);
  plans.set(id1, c.followUp);
  const s = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const k = client(s);
  const failures: string[] = [];
  await Promise.race([once(s, "connect"), k.closed]);
  const parse = (closed = k.st.closed) => parseResponses(k.buf(), closed, (i) => (i === 0 ? "GET" : "GET"));
  const finalsNow = () => finals(parse().responses);
  const upPlan = c.plan;
  k.write(c.type === "expect" && c.send === "early" ? Buffer.concat([c.head, c.bodyWire]) : c.head);
  if (c.behind.length) k.write(c.behind);
  let bodySent = c.type !== "expect" || c.send === "early";
  if (!bodySent) {
    await k.until(() => parse().responses.some((r) => r.status === 100) || finalsNow().length > 0, c.waitMs);
    if (finalsNow().length === 0) (k.write(c.bodyWire), (bodySent = true));
  }
  // the first answer (or the 101)
  await k.until(() => parse().tunnel !== undefined || finalsNow().some((r) => r.complete), HANG_MS);
  let p = parse();
  let followUp = c.behindIsRequest && p.tunnel === undefined;
  if (p.tunnel !== undefined) {
    for (const piece of c.pieces) {
      if (piece.delay) await sleep(piece.delay);
      k.write(piece.bytes);
    }
    if (c.clientEnd === "reset") {
      await sleep(c.pieces.length % 3);
      if (!s.destroyed) s.resetAndDestroy();
    } else {
      if (c.clientEnd === "wait-fin") await k.until(() => k.st.fin, 300);
      s.end();
    }
  } else {
    const first = finals(p.responses)[0];
    const keep = first !== undefined && first.complete && !/close/i.test(header(first.headers, "connection") ?? "") && !k.st.fin;
    if (keep && !followUp) {
      // a final answer before the body was sent, on a connection kept open: the body is still owed (framing)
      if (!bodySent) k.write(c.bodyWire);
      k.write(Buffer.from(`GET /${c.answerRoute ? "fa" : "fe"}/${c.id}/1 HTTP/1.1\r\nHost: fe.example\r\n\r\n`));
      followUp = true;
    }
    if (followUp && keep) await k.until(() => finalsNow().filter((r) => r.complete).length >= 2, HANG_MS);
    s.end();
  }
  await k.until(() => false, HANG_MS);
  if (!k.st.closed) {
    failures.push(`client connection still open ${HANG_MS} ms after the last byte was sent`);
    s.destroy();
  }
  const buf = k.buf();
  p = parse(true);
  failures.push(...p.errors);
  const fs = finals(p.responses);
  const interims = p.responses.filter((r) => r.status < 200 && r.status !== 101);
  if (c.clientEnd !== "reset" || p.tunnel === undefined) {
    if (fs.length === 0) failures.push("no final answer");
    const want0 = c.plan.kind === "final" ? c.plan : undefined;
    fs.forEach((r, i) => {
      const up = header(r.headers, "x-up");
      const want = up === id0 ? want0 : up === id1 ? c.followUp : undefined;
      if (up !== undefined && up !== (i === 0 ? id0 : id1)) failures.push(`final answer ${i} has X-Up ${up}`);
      if (up === undefined) {
        // the proxy's own error: only where the upstream or the client stalled past a timeout
        const stalled = c.plan.kind === "hang" || (c.send === "wait" && c.waitMs >= ROUTE.bodyTimeout && !c.answerRoute && !(c.plan.kind === "final" && c.plan.interim.includes(100)));
        if (!(i === 0 && stalled && [408, 504].includes(r.status))) failures.push(`final answer ${i}: proxy ${r.status}`);
      } else if (r.status === 101) {
        if (c.plan.kind !== "101") failures.push("101 the upstream did not send");
      } else if (want !== undefined) {
        if (r.status !== want.status) failures.push(`answer ${i}: status ${r.status}, upstream sent ${want.status}`);
        else if (!r.complete || !r.body.equals(r.status === 204 ? Buffer.alloc(0) : want.body)) failures.push(`answer ${i}: body ${r.body.length}/${want.body.length} bytes, complete ${r.complete}`);
      }
    });
    if (fs.length > (followUp ? 2 : 1)) failures.push(`${fs.length} final answers`);
    if (followUp && fs.length < 2 && !(fs[0] && /close/i.test(header(fs[0].headers, "connection") ?? ""))) failures.push("follow-up GET not answered on a keep-alive connection");
  }
  for (const r of interims) {
    const up = header(r.headers, "x-up");
    const from = up === id0 ? c.plan : up === id1 ? c.followUp : undefined;
    if (up !== undefined && !(from !== undefined && from.kind !== "101" && from.interim.includes(r.status))) failures.push(`interim ${r.status} (X-Up ${up}) the upstream did not send`);
    if (r.status === 100 && c.answerRoute && up !== undefined) failures.push("upstream's 100 relayed although the proxy answered 100-continue itself");
    if (r.status === 100 && !c.answerRoute && up === undefined) failures.push("a 100 of the proxy's own on the relay route");
    if (r.status === 100 && c.type !== "expect") failures.push("100 relayed without Expect");
  }
  if (c.answerRoute && interims.filter((r) => r.status === 100).length > 1) failures.push("more than one 100 on the answer route");
  if (c.type === "expect") {
    const h = heads.get(id0);
    if (h !== undefined && /\r\nexpect:/i.test(h) === c.answerRoute) failures.push(`Expect ${c.answerRoute ? "forwarded on the answer route" : "dropped on the relay route"}`);
    const got = bodies.get(id0);
    if (got !== undefined && !got.equals(c.body)) failures.push(`upstream read ${got.length} body bytes ≠ the client's ${c.body.length}: ${show(got, 100)}`);
    if (got === undefined && c.plan.kind === "final" && c.plan.read === "before" && fs[0] && header(fs[0].headers, "x-up") === id0) failures.push("answered without the upstream reading the body");
  }
  if (c.plan.kind === "101" && p.tunnel !== undefined) {
    const tun = tunnels.get(id0);
    const full = Buffer.concat(written.get(id0) ?? []);
    const upTunnel = full.subarray(full.indexOf("\r\n\r\n") + 4);
    const clientSent = Buffer.concat([c.behindIsRequest || c.behind.length ? c.behind : Buffer.alloc(0), ...c.pieces.map((x) => x.bytes)]);
    await waitFor(() => tun?.end !== undefined, HANG_MS).catch(() => failures.push("upstream side of the tunnel still open"));
    const upGot = Buffer.concat(tun?.got ?? []);
    const clean = c.plan.end !== "reset" && c.clientEnd !== "reset";
    if (clean) {
      if (!p.tunnel.equals(upTunnel)) failures.push(`client got ${p.tunnel.length} tunnel bytes ≠ upstream's ${upTunnel.length}: ${show(p.tunnel, 200)} want ${show(upTunnel, 200)}`);
      if (!upGot.equals(clientSent)) failures.push(`upstream got ${upGot.length} tunnel bytes ≠ client's ${clientSent.length}: ${show(upGot, 200)} want ${show(clientSent, 200)}`);
      if (tun?.end !== "fin") failures.push(`client's FIN not passed to the upstream (${tun?.end})`);
      if (!k.st.fin) failures.push("upstream's FIN not passed to the client");
    } else {
      if (!upTunnel.subarray(0, p.tunnel.length).equals(p.tunnel)) failures.push(`client's tunnel bytes are not a prefix of the upstream's`);
      if (!clientSent.subarray(0, upGot.length).equals(upGot)) failures.push(`upstream's tunnel bytes are not a prefix of the client's`);
    }
  }
  count(`${c.type} ${c.plan.kind}${c.plan.kind === "101" ? ` ${c.plan.end}/${c.clientEnd}${p.tunnel !== undefined ? "" : " NO TUNNEL"}` : ""}: ${fs.map((r) => `${header(r.headers, "x-up") === undefined ? "proxy " : ""}${r.status}`).join(",")}${interims.length ? ` +${interims.map((r) => r.status).join("+")}` : ""}${bodies.has(id0) ? " body-read" : ""}`);
  plans.delete(id0), plans.delete(id1), bodies.delete(id0), heads.delete(id0), heads.delete(id1), written.delete(id0), written.delete(id1), tunnels.delete(id0);
  return { failures, received: buf, sent: k.st.sent, ms: Date.now() - t0 };
}

function describeEdge(c: EdgeCase, o: Outcome): string {
  const plan = JSON.stringify(c.plan, (k, v: unknown) => (k === "body" || k === "extra" || k === "pieces" ? undefined : v));
  return [
    `seed ${c.seed} (replay: FUZZ_SEED=${c.seed} FUZZ_CASES=1 FUZZ_CONCURRENCY=1) ${c.type} case ${c.id}, ${o.ms} ms`,
    `  client: send ${c.send}${c.send === "wait" ? ` ${c.waitMs}ms` : ""}, ${c.chunked ? "chunked" : "CL"} body ${c.body.length}B, behind ${c.behind.length}B${c.behindIsRequest ? " (GET)" : ""}, ${c.pieces.length} tunnel pieces, end ${c.clientEnd}${c.answerRoute ? ", answer route" : ""}`,
    `  upstream: ${plan}`,
    `  sent: ${show(Buffer.concat(o.sent), 800)}`,
    `  received: ${show(o.received, 1200)}`,
    ...o.failures.map((f) => `  ✗ ${f}`),
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// TLS: fuzz-gen.ts cases over a TLS listener (simplified checks), and abrupt clients

async function runTls(port: number, ca: string, c: FuzzCase, abrupt: number): Promise<Outcome> {
  const t0 = Date.now();
  for (const q of c.reqs) specs.set(q.id, q.up);
  const failures: string[] = [];
  const raw = connect({ port, host: "127.0.0.1" });
  raw.on("error", () => {});
  const s = tls.connect({ socket: raw, servername: "localhost", ca });
  const k = client(s as unknown as Socket);
  if (abrupt === 1) {
    // drop mid-handshake (a TLSSocket cannot resetAndDestroy: reset the TCP socket under it).
    // found here: a client that dropped 1-3 ms into the handshake (FIN) stayed active until
    // core's 10 s TLS handshake deadline (seeds 3986620433, 3986620453; fixed in core's tls.ts,
    // tested in core's tls-dialer.test.ts)
    setTimeout(() => (c.seed % 2 ? s.destroy() : raw.resetAndDestroy()), c.seed % 4);
    await k.until(() => false, HANG_MS);
    return { failures: k.st.closed ? [] : ["never closed"], received: k.buf(), sent: [], ms: Date.now() - t0 };
  }
  await Promise.race([once(s, "secureConnect"), k.closed]);
  const wire = Buffer.concat(c.pieces.map((x) => x.bytes));
  if (abrupt === 2) {
    k.write(wire.subarray(0, 1 + (c.seed % wire.length)));
    await sleep(c.seed % 7);
    s.destroy();
    return { failures: [], received: k.buf(), sent: k.st.sent, ms: Date.now() - t0 };
  }
  for (const x of c.pieces) {
    if (x.delay) await sleep(x.delay);
    k.write(x.bytes);
  }
  if (c.end === "fin") s.end();
  if (c.end === "reset") s.destroy();
  // as in fuzz.test.ts: answers map to requests in order only up to the first mutated request
  const mutAt = c.mutations.find((m) => m.at !== undefined)?.at ?? (c.mutations.length ? 0 : Infinity);
  const methodOf = (i: number, r: ParsedResponse) => {
    const m = new RegExp(`^${c.id}\\.(\\d+)$`).exec(header(r.headers, "x-up") ?? "");
    // the method the upstream saw first: a mutated body length shifts the next request line
    // ("HEAD" read as "EAD" after one byte too many), and its answer is framed by that method
    return m ? (headsSeen.get(`${c.id}.${m[1]}`) ?? c.reqs[+m[1]!]?.method) : i < mutAt ? c.reqs[i]?.method : undefined;
  };
  await k.until(() => {
    const p = parseResponses(k.buf(), false, methodOf);
    return p.settled && p.errors.length === 0 && (p.tunnel !== undefined || finals(p.responses).filter((r) => r.complete).length >= c.reqs.length);
  }, HANG_MS);
  s.end();
  await k.until(() => false, HANG_MS);
  if (!k.st.closed) (failures.push(`client connection still open ${HANG_MS} ms after the last byte`), s.destroy());
  if (c.end !== "reset") {
    const p = parseResponses(k.buf(), true, methodOf);
    failures.push(...p.errors);
    if (c.clean) {
      const fs = finals(p.responses);
      const allValid = c.reqs.every((q) => sent.get(q.id)?.valid && !sent.get(q.id)?.early);
      fs.forEach((r, i) => {
        const up = header(r.headers, "x-up");
        if (up !== undefined && up !== c.reqs[i]?.id && up !== `${c.id}.${i}`) failures.push(`answer ${i} has X-Up ${up}`);
        const script = sent.get(`${c.id}.${i}`);
        if (up !== undefined && script?.valid && r.status !== 101 && !(r.complete && r.body.equals(script.body))) failures.push(`answer ${i}: body ${r.body.length}/${script.body.length} bytes`);
      });
      if (allValid && fs.length !== c.reqs.length && p.tunnel === undefined) failures.push(`clean case: ${fs.length} answers for ${c.reqs.length} requests`);
      for (const q of c.reqs) {
        const got = received.get(q.id);
        if (got !== undefined && !sent.get(q.id)?.early && !got.equals(q.body)) failures.push(`request ${q.idx}: upstream got ${got.length} body bytes of ${q.body.length}`);
      }
    }
  }
  for (const q of c.reqs) specs.delete(q.id), sent.delete(q.id), received.delete(q.id), headsSeen.delete(q.id);
  return { failures, received: k.buf(), sent: c.pieces.map((x) => x.bytes), ms: Date.now() - t0 };
}

// ---------------------------------------------------------------------------------------------

async function runBatch(env: Env, seeds: number[], run: (seed: number) => Promise<string | undefined>, uncaught: unknown[]): Promise<void> {
  const reports: string[] = [];
  upErrors.length = 0;
  backendErrors.length = 0;
  await forEachConcurrently(seeds, CONCURRENCY, async (seed) => {
    const before = uncaught.length;
    const r = await run(seed);
    if (uncaught.length > before) reports.push(`seed ${seed}: uncaught ${String((uncaught[before] as Error)?.stack ?? uncaught[before])}`);
    if (r !== undefined) reports.push(r);
    // replaying one case at a time: a connection it left behind is its own
    if (CONCURRENCY === 1 && !(await waitFor(() => env.proxy.proxy.stats().active === 0, 3000).then(() => true, () => false)))
      reports.push(`seed ${seed}: left an active connection ${JSON.stringify(env.proxy.proxy.stats())}`);
  });
  const proxy = env.proxy.proxy;
  await waitFor(() => proxy.stats().active === 0 && proxy.connections.size === 0, 3000).catch(() => reports.push(`after the batch: active connections ${JSON.stringify(proxy.stats())}`));
  await waitFor(() => env.protocol.poolStats(proxy).every((p) => p.open === p.idle && p.queued === 0), 3000).catch(() =>
    reports.push(`after the batch: busy pooled sockets ${JSON.stringify(env.protocol.poolStats(proxy))}`),
  );
  if (upErrors.length || backendErrors.length) reports.push(`the upstream got malformed requests:\n  ${[...upErrors, ...backendErrors].join("\n  ")}`);
  if (reports.length > 0) expect.fail(`${reports.length} failing case(s) in seeds ${seeds[0]}..${seeds[seeds.length - 1]}:\n\n${reports.join("\n\n")}`);
}

describe("fuzz: upgrade tunnels, 100-continue, TLS", function () {
  this.timeout(90_000);
  let backend: Awaited<ReturnType<typeof startEdgeBackend>>;
  let env: Env;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);

  before(async () => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    backend = await startEdgeBackend();
    const target = `127.0.0.1:${backend.port}`;
    env = await startHttpProxy(
      [
        { name: "answer", match: { path: "/fa" }, targets: [target], options: { ...ROUTE, expectContinue: "answer" } },
        { name: "relay", targets: [target], options: ROUTE },
      ],
      { listener: LISTENER },
    );
  });
  after(async () => {
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
    if (process.env.FUZZ_STATS) console.log([...stats].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n"));
    try {
      await env?.close();
    } finally {
      await backend?.close();
    }
  });

  for (const { first, seeds } of seedBatches(BASE_SEED, CASES, BATCH)) {
    it(`edge cases ${first}..${first + seeds.length - 1} (seeds ${seeds[0]}..${seeds[seeds.length - 1]})`, async () => {
      await runBatch(
        env,
        seeds,
        async (seed) => {
          const c = generateEdgeCase(seed);
          const o = await runEdge(env.port, c);
          return o.failures.length ? describeEdge(c, o) : undefined;
        },
        uncaught,
      );
      expect(uncaught).to.deep.equal([]);
    });
  }

  describe("over TLS", () => {
    let fb: Awaited<ReturnType<typeof startFuzzBackend>>;
    let tenv: Env;
    const ca = createTestCa();
    before(async () => {
      const leaf = ca.issue({ commonName: "localhost", altNames: ["localhost"] });
      fb = await startFuzzBackend();
      tenv = await startHttpProxy([{ targets: [`127.0.0.1:${fb.port}`], options: { ...ROUTE, maxBodySize: 16_000 } }], { listener: LISTENER, tls: { cert: leaf.cert, key: leaf.key } });
    });
    after(async () => {
      try {
        await tenv?.close();
      } finally {
        await fb?.close();
      }
    });
    for (const { first, seeds } of seedBatches(BASE_SEED + 0x10000, TLS_CASES, BATCH)) {
      it(`TLS cases ${first}..${first + seeds.length - 1} (seeds ${seeds[0]}..${seeds[seeds.length - 1]})`, async () => {
        await runBatch(
          tenv,
          seeds,
          async (seed) => {
            const c = generateCase(seed);
            const abrupt = seed % 10 === 3 ? 1 : seed % 10 === 7 ? 2 : 0;
            const o = await runTls(tenv.port, ca.cert, c, abrupt);
            return o.failures.length
              ? [`seed ${seed} TLS${abrupt ? ` abrupt ${abrupt}` : ""} (replay: FUZZ_SEED=${seed - 0x10000} FUZZ_CASES=1 FUZZ_CONCURRENCY=1)`, `  sent: ${show(Buffer.concat(o.sent), 800)}`, `  received: ${show(o.received, 1200)}`, ...o.failures.map((f) => `  ✗ ${f}`)].join("\n")
              : undefined;
          },
          uncaught,
        );
      });
    }
  });
});
