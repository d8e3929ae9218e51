/**
 * Runs one fuzz-taps case against a proxy and checks what the client got against what the
 * upstream sent (fuzz-backend) and what the taps did (fuzz-taps-gen records).
 */
import { count, headsSeen, received, sent, specs } from "../../protocol-http/dist-test/fuzz-backend.js";
import { header, parseResponses, type ParsedResponse } from "../../protocol-http/dist-test/fuzz-check.js";
import { runScriptedClient } from "../../protocol-http/dist-test/fuzz-client.js";
import { show } from "../../protocol-http/dist-test/fuzz-gen.js";
import { plans, recordFor, reqRecords, resRecords, type TapCase } from "./fuzz-taps-gen.js";

export const HANG_MS = 6000;
export const MAX_BODY = 16_000;
const ERROR_BODY = /^(\d{3}) [^\n]*\nrequest id: \S+\n$/;
const bodiless = (s: number) => s === 204 || s === 304 || s < 200;

export interface Outcome {
  failures: string[];
  received: Buffer;
  ms: number;
}

/** `shutdown`: the proxy may be closed while this case runs (unanswered requests and cut responses are then fine, hangs are not) */
export async function runTapCase(port: number, c: TapCase, shutdown = false): Promise<Outcome> {
  c.reqs.forEach((q, i) => {
    specs.set(q.id, q.up);
    plans.set(q.id, { req: c.req[i]!, res: c.res[i]! });
  });
  const t0 = Date.now();
  const methodOf = (i: number): string | undefined => c.reqs[i]?.method;
  const { received: buf, closed } = await runScriptedClient(port, { pieces: c.pieces, expected: c.reqs.length, methodOf, finOnTunnel: true, hangMs: HANG_MS });
  const failures: string[] = [];
  if (!closed) failures.push(`client connection still open ${HANG_MS} ms after the last byte was sent`);
  const p = parseResponses(buf, true, methodOf);
  failures.push(...p.errors);
  let k = 0; // the request the next final response answers
  let last: ParsedResponse | undefined;
  let endsConnection = false;
  // requests that got a 100 of the proxy's own: it may invite the body itself when plugin-retry
  // or a tap reads the body before the upstream has the request (inviteBody, exchange-request.ts)
  const own100 = new Set<number>();
  const any100 = new Set<number>();
  for (const r of p.responses) {
    if (endsConnection) failures.push(`response ${r.status} after a 1xx that took a final response's place`);
    const q = c.reqs[k];
    if (q === undefined) {
      failures.push(`response ${r.status} beyond the ${c.reqs.length} requests`);
      break;
    }
    const up = header(r.headers, "x-up");
    const direct = header(r.headers, "x-tap") === "direct";
    const reqRec = reqRecords.get(q.id);
    const clientHead = q.method === "HEAD";
    if (r.status < 200 && r.status !== 101) {
      // the upstream's interim responses, or a tap's 1xx in the final's place (then: close)
      const tapped = direct || ((up === q.id || up === "unknown") && recordFor(q.id, r.headers) !== undefined);
      if (tapped) {
        count(`1xx in a final's place`);
        endsConnection = true;
      } else if (r.status === 100 && up === undefined && q.expect && !q.http10 && !any100.has(k)) {
        count("proxy 100 (body invited)");
        own100.add(k);
      } else if (up !== q.id) failures.push(`interim ${r.status} not from request ${k}'s upstream (X-Up ${up})`);
      else if (r.status === 100 && own100.has(k)) failures.push(`upstream's 100 relayed after the proxy's own for request ${k}`);
      if (r.status === 100) any100.add(k);
      continue;
    }
    last = r;
    k++;
    if (r.status === 101) break;
    if (direct) {
      count(`direct ${r.status}`);
      const d = reqRec?.responded;
      if (header(r.headers, "x-tap-id") !== q.id || d === undefined) failures.push(`direct answer for ${header(r.headers, "x-tap-id")} in request ${k - 1}'s place`);
      else {
        if (r.status !== d.status) failures.push(`direct answer ${r.status}, tap said ${d.status}`);
        const want = clientHead || bodiless(d.status) ? Buffer.alloc(0) : d.body;
        if (r.complete && !r.body.equals(want)) failures.push(`direct ${d.status} body ${show(r.body, 100)}, want ${show(want, 100)}`);
        if (!r.complete) failures.push(`direct ${d.status} answer incomplete`);
        if (header(r.headers, "content-length") === "9999") failures.push(`direct answer kept the tap's Content-Length`);
      }
      continue;
    }
    if (up === undefined) {
      count(`proxy ${r.status}`);
      // the proxy's own answer
      const resRecs = resRecords.get(q.id) ?? [];
      const ok =
        r.status === 500 ? reqRec?.threw === true : r.status === 502 ? true : r.status === 503 ? header(r.headers, "retry-after") !== undefined : [504, 408, 413].includes(r.status);
      if (!ok) failures.push(`proxy answered ${r.status} to request ${k - 1}${r.status === 503 ? " without Retry-After" : ""} (tap: ${JSON.stringify(reqRec)}, ${JSON.stringify(resRecs)})`);
      if (r.status === 504 && c.route !== "slow" && !shutdown && sent.get(q.id)?.valid === true && !resRecs.some((x) => x.error))
        failures.push(`504 for a valid upstream answer (request ${k - 1})`);
      if (header(r.headers, "content-length") === undefined || header(r.headers, "x-request-id") === undefined) failures.push(`proxy error ${r.status} without Content-Length or X-Request-Id`);
      if (r.body.length > 0 && r.complete && !ERROR_BODY.test(r.body.toString("utf8"))) failures.push(`proxy error ${r.status} with body ${show(r.body, 200)}`);
      continue;
    }
    // an upstream answer, through the taps
    if (up === "unknown") {
      if (reqRec?.unknownPath !== true) failures.push(`upstream "unknown" answer to request ${k - 1} whose path the tap kept`);
    } else if (up !== q.id) {
      failures.push(`answer X-Up ${up} in request ${k - 1}'s place (${q.id})`);
      continue;
    }
    const rec = recordFor(q.id, r.headers);
    if (rec === undefined) {
      failures.push(`upstream answer to request ${k - 1} without a tap record (X-Tap-Att ${header(r.headers, "x-tap-att")})`);
      continue;
    }
    if (rec.retried || rec.threw) failures.push(`the answer of attempt ${rec.attempt} reached the client though the tap ${rec.retried ? "retried" : "threw"}`);
    count(`upstream answer attempt ${rec.attempt}${rec.consumed ? " consumed" : ""}${rec.status !== undefined ? " status" : ""}`);
    if (header(r.headers, "x-resp-rule") !== "1" || !/fz-edge/.test(header(r.headers, "via") ?? "")) failures.push(`plugin-headers' response rules/Via missing on request ${k - 1}'s answer`);
    const script = up === "unknown" ? undefined : sent.get(q.id);
    const upStatus = rec.upStatus;
    const expStatus = rec.status ?? upStatus;
    if (r.status !== expStatus) failures.push(`request ${k - 1}: status ${r.status}, expected ${expStatus} (upstream ${upStatus}, tap ${rec.status})`);
    const fwdMethod = headsSeen.get(q.id) ?? q.method;
    const methodSwap = (fwdMethod === "HEAD") !== clientHead;
    if (clientHead || bodiless(r.status) || (upStatus !== undefined && bodiless(upStatus))) {
      if (r.body.length > 0) failures.push(`request ${k - 1}: ${r.status} to ${q.method} with ${r.body.length} body bytes`);
    } else if (methodSwap) {
      count("method swapped to/from HEAD");
    } else if (script !== undefined && script.valid && !shutdown) {
      if (rec.consumed) {
        // the tap took bytes of the stream: the rest may follow (chunked) or the response is cut
        // (a Content-Length body cannot be complete then: the proxy must cut the connection)
        if (r.complete && r.framing === "length" && !r.body.equals(script.body)) failures.push(`request ${k - 1}: ${r.body.length} of ${script.body.length} bytes under the upstream's Content-Length`);
      } else if (!r.complete) {
        if (c.route !== "slow") failures.push(`valid upstream answer to request ${k - 1} reached the client incomplete (${r.body.length}/${script.body.length} bytes)`);
      } else if (!r.body.equals(script.body)) failures.push(`request ${k - 1}: body differs (${r.body.length} vs ${script.body.length} bytes): got ${show(r.body, 200)} want ${show(script.body, 200)}`);
    }
  }
  // every request answered unless something ended the connection
  const lastConn = (last && header(last.headers, "connection")) ?? "";
  const ended = endsConnection || p.tunnel !== undefined || last === undefined || !last.complete || /close/i.test(lastConn);
  // a clean close without an answer is fine when the upstream broke its answer (a reset mid-body
  // once taps had run: the head was still corked), when a tap consumed the body, or past a
  // deadline; not for a valid answer, nor for a request the upstream never got
  const nextId = c.reqs[k]?.id ?? "";
  const consumedNext = (resRecords.get(nextId) ?? []).some((x) => x.consumed);
  const brokenNext = sent.get(nextId)?.valid === false;
  if (k < c.reqs.length && !ended && !shutdown && !consumedNext && !brokenNext && c.route !== "slow") failures.push(`${k} answers for ${c.reqs.length} requests, and the last did not close`);
  if (!shutdown) {
    for (const q of c.reqs) {
      const got = received.get(q.id);
      const s = sent.get(q.id);
      if (got !== undefined && s !== undefined && !s.early && q.body.length <= MAX_BODY && !got.equals(q.body)) failures.push(`request ${q.idx}: upstream got ${got.length} body bytes, client sent ${q.body.length}`);
    }
  }
  return { failures, received: buf, ms: Date.now() - t0 };
}

export function describeTapCase(c: TapCase, o: Outcome, replay: string): string {
  const wire = Buffer.concat(c.pieces.map((p) => p.bytes));
  return [
    `seed ${c.seed} (replay: ${replay}) case ${c.id} route ${c.route}, ${o.ms} ms`,
    `  requests: ${c.reqs.map((q) => `${q.method}${q.http10 ? "/1.0" : ""}${q.chunked ? " chunked" : ""}${q.expect ? " expect" : ""}${q.upgrade ? " upgrade" : ""} → ${q.up.kind}${q.up.interim.length ? `+${q.up.interim.join("+")}` : ""}`).join(" | ")}`,
    `  req taps: ${c.req.map((t) => JSON.stringify({ ...t, respond: t.respond && { status: t.respond.status, bytes: t.respond.body.length } })).join(" | ")}`,
    `  res taps: ${c.res.map((a) => a.map((t) => `${t.action}${t.status ?? ""}/${t.read}${t.delay !== undefined ? `+${t.delay}ms` : ""}`).join(",")).join(" | ")}`,
    `  records: ${c.reqs.map((q) => JSON.stringify({ req: reqRecords.get(q.id), res: resRecords.get(q.id) })).join(" | ")}`,
    `  sent: ${show(wire, 1200)}`,
    `  received: ${show(o.received, 1500)}`,
    ...o.failures.map((f) => `  ✗ ${f}`),
  ].join("\n");
}
