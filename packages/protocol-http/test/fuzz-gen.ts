/**
 * Seeded generators for fuzz.test.ts: client byte streams (valid requests, then mutated) and
 * upstream behaviours (valid responses, then broken ones). Everything comes from one PRNG
 * (mulberry32) seeded per case, so a case seed replays the same bytes and the same upstream.
 */
import { seededRandom } from "@switchyard/test-utils";

/** Test-data helpers over test-utils' seeded PRNG (mulberry32). */
export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** random body bytes; sometimes text that looks like HTTP, so a desync shows up as garbage */
  body(n: number): Buffer {
    const b = Buffer.alloc(n);
    const mode = this.int(0, 2);
    for (let i = 0; i < n; i++) b[i] = mode === 0 ? this.int(0, 255) : this.int(0x20, 0x7e);
    if (mode === 2 && n > 40) b.write("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", this.int(0, n - 40), "latin1");
    return b;
  }
  /** cut `data` at random boundaries */
  split(data: Buffer, maxPieces: number): Buffer[] {
    const n = Math.min(this.int(1, maxPieces), Math.max(1, data.length));
    const cuts = new Set<number>();
    while (cuts.size < n - 1) cuts.add(this.int(1, data.length - 1));
    const sorted = [...cuts].sort((a, b) => a - b);
    const out: Buffer[] = [];
    let prev = 0;
    for (const c of sorted) {
      out.push(data.subarray(prev, c));
      prev = c;
    }
    out.push(data.subarray(prev));
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// upstream behaviours

export type UpKind =
  // valid responses
  | "cl"
  | "chunked"
  | "close"
  | "early" // a CL response as soon as the head arrived, before the request body
  | "extra" // a valid CL response followed by junk bytes (the socket must not be reused)
  | "sloppy-204" // 204 declaring and sending a body
  | "304"
  | "101" // only generated for upgrade requests (else it is "101-unasked")
  // broken responses
  | "101-unasked"
  | "status-bad"
  | "garbage"
  | "cl-te"
  | "dup-cl"
  | "bad-cl"
  | "bad-chunk"
  | "reset-head"
  | "reset-body"
  | "trunc-body"
  | "hang"
  | "stall-body";

export const VALID_UP: ReadonlySet<UpKind> = new Set(["cl", "chunked", "close", "early", "extra", "sloppy-204", "304", "101"]);

export interface UpSpec {
  kind: UpKind;
  seed: number;
  /** interim responses written before the final one */
  interim: number[];
  /** write the response in random pieces with small delays */
  split: boolean;
}

/** One step of a backend's answer. */
export type UpStep = { write: Buffer; delay: number } | { end: true } | { reset: true } | { hang: true };

export interface UpScript {
  steps: UpStep[];
  /** the response is well-formed and complete: the client must get `status` and exactly `body` */
  valid: boolean;
  status: number;
  /** the body the client must see (empty for HEAD/204/304) */
  body: Buffer;
  /** respond as soon as the head is read, without waiting for the request body */
  early: boolean;
}

const BAD_STATUS_LINES = [
  "HTTP/1.1 2000 OK",
  "HTTP/1.1 OK",
  "HTP/1.1 200 OK",
  "HTTP/1.1 20 OK",
  "HTTP/1.1 -200 OK",
  "HTTP/9.9 200 OK",
  "HTTP/1.1 200 O\x00K",
  "\x00\x01\x02",
  "HTTP/1.1",
  "http/1.1 200 ok",
];

/** The backend's answer to request `id` (method as forwarded), built from the spec's own seed. */
export function buildUpstream(spec: UpSpec, method: string, id: string): UpScript {
  const r = new Rng(spec.seed);
  const head = method === "HEAD";
  const status = spec.kind === "sloppy-204" ? 204 : spec.kind === "304" ? 304 : r.pick([200, 200, 200, 201, 404, 500]);
  const bodyLen = r.pick([0, 1, 5, r.int(0, 300), r.int(0, 3000), r.int(0, 70_000)]);
  const body = r.body(bodyLen);
  const xh = `X-Up: ${id}\r\nX-Rand: ${r.int(0, 1e6)}\r\n`;
  const interim = spec.interim.map((s) => `HTTP/1.1 ${s} ${s === 100 ? "Continue" : "Early Hints"}\r\n${xh}${s === 103 ? "Link: </a>; rel=preload\r\n" : ""}\r\n`).join("");
  const steps: UpStep[] = [];
  let valid = VALID_UP.has(spec.kind);
  let clientBody: Buffer = head || status === 204 || status === 304 ? Buffer.alloc(0) : body;
  let bytes: Buffer;
  let after: UpStep[] = [];
  const clHead = (extra = "") => `${interim}HTTP/1.1 ${status} OK\r\n${xh}Content-Length: ${body.length}\r\n${extra}\r\n`;
  switch (spec.kind) {
    case "cl":
    case "early":
    case "extra":
      bytes = Buffer.concat([Buffer.from(clHead(), "latin1"), head ? Buffer.alloc(0) : body]);
      if (spec.kind === "extra" && body.length > 16_000) valid = false; // may be read apart from its junk (see oneWrite)
      if (spec.kind === "extra") bytes = Buffer.concat([bytes, Buffer.from(r.pick(["junk", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad", "\r\n"]), "latin1")]);
      break;
    case "chunked": {
      const parts: Buffer[] = [Buffer.from(`${interim}HTTP/1.1 ${status} OK\r\n${xh}Transfer-Encoding: chunked\r\n\r\n`, "latin1")];
      if (!head) {
        let off = 0;
        while (off < body.length) {
          const n = Math.min(body.length - off, r.int(1, 5000));
          const ext = r.chance(0.2) ? ";foo=bar" : "";
          parts.push(Buffer.from(`${r.chance(0.3) ? n.toString(16).toUpperCase() : n.toString(16)}${ext}\r\n`, "latin1"), body.subarray(off, off + n), Buffer.from("\r\n"));
          off += n;
        }
        parts.push(Buffer.from(r.chance(0.3) ? "0\r\nX-Trailer: t1\r\n\r\n" : "0\r\n\r\n", "latin1"));
      }
      bytes = Buffer.concat(parts);
      break;
    }
    case "close":
      bytes = Buffer.concat([Buffer.from(`${interim}HTTP/1.1 ${status} OK\r\n${xh}${r.chance(0.5) ? "Connection: close\r\n" : ""}\r\n`, "latin1"), head ? Buffer.alloc(0) : body]);
      after = [{ end: true }];
      break;
    case "sloppy-204":
      bytes = Buffer.from(`${interim}HTTP/1.1 204 No Content\r\n${xh}Content-Length: 5\r\n\r\nhello`, "latin1");
      break;
    case "304":
      bytes = Buffer.from(`${interim}HTTP/1.1 304 Not Modified\r\n${xh}Content-Length: ${body.length}\r\nETag: "x"\r\n\r\n`, "latin1");
      break;
    case "101":
    case "101-unasked":
      bytes = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\n${xh}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\ntunnel-bytes`, "latin1");
      after = [{ end: true }];
      clientBody = Buffer.alloc(0);
      break;
    case "status-bad":
      bytes = Buffer.from(`${interim}${r.pick(BAD_STATUS_LINES)}\r\n${xh}Content-Length: 2\r\n\r\nok`, "latin1");
      after = r.chance(0.5) ? [{ end: true }] : [];
      break;
    case "garbage":
      bytes = Buffer.concat([Buffer.from(interim, "latin1"), r.body(r.int(1, 200))]);
      after = r.pick<UpStep[]>([[{ end: true }], [{ reset: true }], []]);
      break;
    case "cl-te":
      bytes = Buffer.from(`${interim}HTTP/1.1 200 OK\r\n${xh}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, "latin1");
      break;
    case "dup-cl":
      bytes = Buffer.from(`${interim}HTTP/1.1 200 OK\r\n${xh}Content-Length: 3\r\nContent-Length: ${r.pick(["3", "4", "30"])}\r\n\r\nabcd`, "latin1");
      break;
    case "bad-cl":
      bytes = Buffer.from(`${interim}HTTP/1.1 200 OK\r\n${xh}Content-Length: ${r.pick(["-1", "abc", "1e3", "99999999999999999999", "0x10", "+4", "4 4"])}\r\n\r\nabcd`, "latin1");
      break;
    case "bad-chunk":
      bytes = Buffer.from(`${interim}HTTP/1.1 200 OK\r\n${xh}Transfer-Encoding: chunked\r\n\r\n${r.pick(["zz", "-1", "fffffffffffffffffff", "3 3", ""])}\r\nabc\r\n0\r\n\r\n`, "latin1");
      break;
    case "reset-head":
    case "reset-body":
    case "trunc-body": {
      const full = Buffer.concat([Buffer.from(clHead(), "latin1"), body.length > 0 ? body : Buffer.from("xyz")]);
      const headLen = Buffer.byteLength(clHead(), "latin1");
      const cut = spec.kind === "reset-head" ? r.int(0, Math.max(0, headLen - 1)) : r.int(headLen, full.length - 1);
      bytes = full.subarray(0, cut);
      after = [spec.kind === "trunc-body" ? { end: true } : { reset: true }];
      // a HEAD response has no body: cutting "mid-body" is a complete response then
      if (head && spec.kind !== "reset-head") valid = false;
      break;
    }
    case "hang":
      bytes = Buffer.from(r.chance(0.5) ? "" : interim, "latin1");
      after = [{ hang: true }];
      break;
    case "stall-body":
      bytes = Buffer.from(`${interim}HTTP/1.1 200 OK\r\n${xh}Content-Length: ${body.length + 10}\r\n\r\n`, "latin1");
      bytes = Buffer.concat([bytes, head ? Buffer.alloc(0) : body]);
      after = [{ hang: true }];
      break;
  }
  // junk after a complete response is only detectable when it arrives with the response: junk
  // written later is indistinguishable from the next response (no proxy can tell), so these
  // are written in one piece
  // (for HEAD, any body bytes are such junk)
  // (a "mid-body" cut of a response with no body — Content-Length: 0, "xyz" appended — is a
  // complete response and junk as well: written later, the proxy may rightly have reused the socket)
  const noBodyCut = (spec.kind === "trunc-body" || spec.kind === "reset-body") && body.length === 0;
  const oneWrite = head || noBodyCut || spec.kind === "extra" || spec.kind === "sloppy-204" || spec.kind === "dup-cl" || spec.kind === "bad-cl";
  if (spec.split && bytes.length > 1 && !oneWrite) {
    for (const piece of r.split(bytes, 6)) steps.push({ write: piece, delay: r.int(0, 6) });
  } else if (bytes.length > 0) steps.push({ write: bytes, delay: 0 });
  steps.push(...after);
  return { steps, valid, status: spec.kind === "101" ? 101 : status, body: clientBody, early: spec.kind === "early" };
}

// ---------------------------------------------------------------------------------------------
// client streams

export interface ReqSpec {
  idx: number;
  id: string;
  method: string;
  http10: boolean;
  /** the request closes the connection after its response (Connection: close, or 1.0 without keep-alive) */
  close: boolean;
  upgrade: boolean;
  expect: boolean;
  body: Buffer;
  chunked: boolean;
  up: UpSpec;
  /** wire bytes of this request */
  wire: Buffer;
}

/** A mutation with the statuses the proxy must answer for the mutated request (when it gets that far). */
export interface Mutation {
  name: string;
  /** index of the mutated request, when the mutation is local to one request */
  at?: number;
  /** the mutated request must be answered with one of these and never reach the upstream */
  rejects?: number[];
}

export interface FuzzCase {
  seed: number;
  id: string;
  reqs: ReqSpec[];
  pieces: Array<{ bytes: Buffer; delay: number }>;
  /** after the last piece: nothing, a FIN, or a reset */
  end: "none" | "fin" | "reset";
  mutations: Mutation[];
  /** no mutation, no early end: every request is answered in order */
  clean: boolean;
}

const TOKEN_CASE = (r: Rng, name: string) =>
  r.chance(0.5) ? name : [...name].map((c) => (r.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join("");

function upSpec(r: Rng, req: { upgrade: boolean; method: string; bodied: boolean }): UpSpec {
  let kind: UpKind;
  if (req.upgrade && r.chance(0.6)) kind = "101";
  else if (r.chance(0.65)) kind = r.pick<UpKind>(["cl", "cl", "cl", "chunked", "chunked", "close", "extra", "sloppy-204", "304", ...(req.bodied ? (["early"] as UpKind[]) : [])]);
  else
    kind = r.pick<UpKind>(["101-unasked", "status-bad", "garbage", "cl-te", "dup-cl", "bad-cl", "bad-chunk", "reset-head", "reset-body", "trunc-body", "hang", "stall-body"]);
  const interim: number[] = [];
  if (r.chance(0.15)) interim.push(103);
  if (r.chance(0.1)) interim.push(100);
  return { kind, seed: r.int(0, 2 ** 31), interim, split: r.chance(0.3) };
}

export function buildRequest(r: Rng, caseId: string, idx: number, last: boolean): ReqSpec {
  const id = `${caseId}.${idx}`;
  const http10 = r.chance(0.2);
  const upgrade = last && !http10 && r.chance(0.08);
  const method = upgrade ? "GET" : r.pick(["GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE", "OPTIONS"]);
  const bodied = method === "POST" || method === "PUT" || (method === "DELETE" && r.chance(0.3));
  const body = bodied ? r.body(r.pick([0, 1, 10, r.int(0, 500), r.int(0, 20_000)])) : Buffer.alloc(0);
  const chunked = bodied && !http10 && r.chance(0.4);
  const expect = bodied && !http10 && r.chance(0.15);
  const close = last && r.chance(0.3);
  const path = `/fz/${caseId}/${idx}?q=${r.int(0, 99999)}`;
  const target = r.chance(0.1) ? `http://${r.pick(["fz.example", "fz.example:8080", "FZ.Example"])}${path}` : path;
  const lines: string[] = [`${method} ${target} HTTP/1.${http10 ? 0 : 1}`];
  const hdrs: string[] = [];
  if (!http10 || r.chance(0.5)) hdrs.push(`${TOKEN_CASE(r, "Host")}: ${r.pick(["fz.example", "fz.example:80", "127.0.0.1"])}`);
  for (let i = r.int(0, 4); i > 0; i--) {
    const name = TOKEN_CASE(r, r.pick(["X-Fuzz", "Accept", "User-Agent", "Cookie", "X-Dup"]));
    const v = `v${r.int(0, 999)}${r.chance(0.2) ? "\t " : ""}`;
    hdrs.push(r.chance(0.2) ? `${name}:${v}` : `${name}: ${v}`);
    if (r.chance(0.2)) hdrs.push(`${name}: again`);
  }
  if (http10 && !close) hdrs.push(`${TOKEN_CASE(r, "Connection")}: ${TOKEN_CASE(r, "keep-alive")}`);
  else if (close && !http10) hdrs.push(`${TOKEN_CASE(r, "Connection")}: close`);
  if (upgrade) hdrs.push("Upgrade: websocket", "Connection: Upgrade");
  // an Upgrade on a request with a body is an ordinary request: the body must never be read as
  // the next request (a smuggling bug this generator did not reach before)
  else if (bodied && !http10 && (chunked || body.length > 0) && r.chance(0.06)) hdrs.push("Upgrade: h2c", "Connection: Upgrade");
  if (expect) hdrs.push(`Expect: ${TOKEN_CASE(r, "100-continue")}`);
  if (bodied) {
    if (chunked) hdrs.push(`${TOKEN_CASE(r, "Transfer-Encoding")}: chunked`);
    else hdrs.push(`${TOKEN_CASE(r, "Content-Length")}: ${body.length}`);
  }
  // shuffle a little: Host need not come first
  for (let i = hdrs.length - 1; i > 0; i--) {
    if (r.chance(0.3)) {
      const j = r.int(0, i);
      [hdrs[i], hdrs[j]] = [hdrs[j]!, hdrs[i]!];
    }
  }
  lines.push(...hdrs, "", "");
  const parts: Buffer[] = [Buffer.from(lines.join("\r\n"), "latin1")];
  if (bodied && chunked) {
    let off = 0;
    while (off < body.length) {
      const n = Math.min(body.length - off, r.int(1, 4000));
      const ext = r.chance(0.2) ? r.pick([";a=b", ";x", ';q="s"']) : "";
      parts.push(Buffer.from(`${n.toString(16)}${ext}\r\n`, "latin1"), body.subarray(off, off + n), Buffer.from("\r\n"));
      off += n;
    }
    parts.push(Buffer.from(r.chance(0.3) ? "0\r\nX-T: 1\r\n\r\n" : "0\r\n\r\n", "latin1"));
  } else if (bodied) parts.push(body);
  const up = upSpec(r, { upgrade, method, bodied });
  // HTTP/1.0 clients cannot take interim responses; keep them anyway: the proxy must drop them
  return { idx, id, method, http10, close: close || (http10 && !hdrs.some((h) => /keep-alive/i.test(h))), upgrade, expect, body, chunked, up, wire: Buffer.concat(parts) };
}

type HeadMut = { name: string; rejects: number[] | undefined; apply(r: Rng, head: string, req: ReqSpec): string };

const BAD_HEADS: HeadMut[] = [
  { name: "CL+TE", rejects: [400], apply: (_r, h) => addHeaders(h, "Content-Length: 5\r\nTransfer-Encoding: chunked") },
  { name: "duplicate CL", rejects: [400], apply: (r, h) => addHeaders(h, `Content-Length: ${r.pick(["0", "1"])}\r\nContent-Length: ${r.pick(["0", "2"])}`) },
  {
    name: "invalid CL",
    rejects: [400],
    apply: (r, h) => addHeaders(h, `Content-Length: ${r.pick(["-1", "+3", "1a", "0x5", "3, 3", "99999999999999999999", "1 2", "", " "])}`),
  },
  { name: "TE not chunked", rejects: [400], apply: (r, h) => addHeaders(h, `Transfer-Encoding: ${r.pick(["gzip", "identity", "chunked, chunked", "gzip, chunked", "chunked;x=1", "xchunked"])}`) },
  { name: "repeated TE", rejects: [400], apply: (_r, h) => addHeaders(h, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked") },
  { name: "obs-fold", rejects: [400], apply: (_r, h) => addHeaders(h, "X-Fold: a\r\n  b") },
  { name: "bare LF", rejects: [400], apply: (r, h) => replaceNth(r, h, "\r\n", "\n") },
  { name: "bare CR in value", rejects: [400], apply: (_r, h) => addHeaders(h, "X-Cr: a\rb") },
  { name: "NUL in value", rejects: [400], apply: (_r, h) => addHeaders(h, "X-Nul: a\x00b") },
  { name: "control in value", rejects: [400], apply: (r, h) => addHeaders(h, `X-Ctl: a${String.fromCharCode(r.pick([1, 8, 0x0b, 0x0c, 0x1b, 0x7f]))}b`) },
  { name: "space before colon", rejects: [400], apply: (_r, h) => addHeaders(h, "X-Sp : b") },
  { name: "bad header name", rejects: [400], apply: (r, h) => addHeaders(h, `${r.pick(["X(A)", "X A", "X@A", "\x01X", "X\"A"])}: b`) },
  { name: "duplicate Host", rejects: [400], apply: (_r, h) => addHeaders(h, "Host: a\r\nHost: b") },
  { name: "unsupported Expect", rejects: [417], apply: (_r, h) => addHeaders(h, "Expect: 200-ok") },
  { name: "HTTP/2.0", rejects: [505, 400], apply: (_r, h) => h.replace(/ HTTP\/1\.[01]\r\n/, " HTTP/2.0\r\n") },
  { name: "bad version", rejects: [400, 505], apply: (r, h) => h.replace(/ HTTP\/1\.[01]\r\n/, ` ${r.pick(["HTTP/1", "HTTP/1.10", "HTTPS/1.1", "http/1.1", "HTTP/1.1 ", "HTTP/0.9"])}\r\n`) },
  { name: "CONNECT", rejects: [405, 400], apply: (_r, h) => h.replace(/^[A-Z]+ \S+/, "CONNECT fz.example:443") },
  { name: "double space", rejects: [400], apply: (_r, h) => h.replace(/^([A-Z]+) /, "$1  ") },
  { name: "long URL", rejects: [414], apply: (_r, h) => h.replace(/\?q=/, `?pad=${"a".repeat(1100)}&q=`) },
  { name: "long header", rejects: [431], apply: (r, h) => addHeaders(h, `X-Long: ${"b".repeat(r.int(4100, 9000))}`) },
  { name: "many headers", rejects: [431], apply: (_r, h) => addHeaders(h, Array.from({ length: 60 }, (_, i) => `X-N${i}: ${i}`).join("\r\n")) },
  { name: "above root", rejects: [400], apply: (_r, h) => h.replace(/ \/fz\//, " /../../fz/") },
  // no promised status: anything well-formed (or nothing) is acceptable
  { name: "lower-case method", rejects: undefined, apply: (_r, h) => h.replace(/^([A-Z]+)/, (m) => m.toLowerCase()) },
  { name: "flip a head byte", rejects: undefined, apply: (r, h) => flip(r, h) },
  { name: "drop a CRLF", rejects: undefined, apply: (r, h) => replaceNth(r, h, "\r\n", "") },
  { name: "missing Host", rejects: undefined, apply: (_r, h) => h.replace(/\r\nhost:[^\r]*/i, "") },
];

function addHeaders(head: string, lines: string): string {
  const end = head.indexOf("\r\n") + 2;
  return head.slice(0, end) + lines + "\r\n" + head.slice(end);
}

function replaceNth(r: Rng, head: string, what: string, by: string): string {
  const idx: number[] = [];
  for (let i = head.indexOf(what); i >= 0; i = head.indexOf(what, i + 1)) idx.push(i);
  const at = r.pick(idx);
  return head.slice(0, at) + by + head.slice(at + what.length);
}

function flip(r: Rng, head: string): string {
  // keep the first 20 bytes' path id intact where possible: flip in the header block
  const start = Math.min(head.indexOf("\r\n") + 2, head.length - 1);
  const at = r.int(start, head.length - 1);
  return head.slice(0, at) + String.fromCharCode(r.int(0, 255)) + head.slice(at + 1);
}

/** Mutations of a request's body framing (chunked or Content-Length). */
function mutateBody(r: Rng, req: ReqSpec, head: string, bodyWire: Buffer): { name: string; head: string; body: Buffer } {
  const choices = req.chunked
    ? ["bad chunk size", "chunk too long", "missing chunk CRLF", "no last chunk", "huge chunk"]
    : ["body longer than CL", "body shorter than CL"];
  const name = r.pick(choices);
  let body = bodyWire;
  switch (name) {
    case "bad chunk size":
      body = Buffer.concat([Buffer.from(`${r.pick(["zz", "-1", "0x3", "3 3", " 3", ""])}\r\nabc\r\n`, "latin1"), bodyWire]);
      break;
    case "chunk too long":
      body = Buffer.from(`3\r\nabcdef\r\n0\r\n\r\n`, "latin1");
      break;
    case "missing chunk CRLF":
      body = Buffer.from(`3\r\nabc0\r\n\r\n`, "latin1");
      break;
    case "no last chunk":
      body = bodyWire.subarray(0, Math.max(0, bodyWire.length - r.int(1, 5)));
      break;
    case "huge chunk":
      body = Buffer.from(`${r.pick(["fffffffffffffffffff", "7fffffffffffffff", "100000000"])}\r\nabc\r\n`, "latin1");
      break;
    case "body longer than CL":
      body = Buffer.concat([bodyWire, Buffer.from(r.pick(["x", "GARBAGE\r\n\r\n", "\r\n"]), "latin1")]);
      break;
    case "body shorter than CL":
      body = bodyWire.subarray(0, bodyWire.length - 1);
      break;
  }
  return { name, head, body };
}

export function generateCase(seed: number): FuzzCase {
  const r = new Rng(seed);
  const caseId = `c${seed.toString(36)}`;
  const n = r.pick([1, 1, 1, 2, 2, 3, 4]);
  const reqs: ReqSpec[] = [];
  for (let i = 0; i < n; i++) {
    const req = buildRequest(r, caseId, i, i === n - 1);
    reqs.push(req);
    if (req.close) break; // nothing is answered after a close
  }
  const mutations: Mutation[] = [];
  const wires = reqs.map((q) => q.wire);
  if (r.chance(0.55)) {
    const at = r.int(0, reqs.length - 1);
    const req = reqs[at]!;
    const wire = wires[at]!;
    const headEnd = wire.indexOf("\r\n\r\n") + 4;
    let head = wire.subarray(0, headEnd).toString("latin1");
    let body = wire.subarray(headEnd);
    const bodied = req.body.length > 0 || req.chunked;
    if (bodied && r.chance(0.3)) {
      const m = mutateBody(r, req, head, body);
      head = m.head;
      body = m.body;
      mutations.push({ name: m.name, at });
    } else {
      const m = r.pick(BAD_HEADS);
      const mutated = m.apply(r, head, req);
      // "head" is another method than HEAD (methods are case-sensitive): its answer has a body
      if (m.name === "lower-case method") req.method = req.method.toLowerCase();
      // a mutation that did not apply (e.g. no "/fz/" after a space in an absolute-form target) promises nothing
      mutations.push(m.rejects && mutated !== head ? { name: m.name, at, rejects: m.rejects } : { name: m.name, at });
      head = mutated;
    }
    wires[at] = Buffer.concat([Buffer.from(head, "latin1"), body]);
  }
  let stream = Buffer.concat(wires);
  if (r.chance(0.08)) {
    stream = Buffer.concat([stream, r.body(r.int(1, 40))]);
    mutations.push({ name: "trailing garbage" });
  }
  let end: FuzzCase["end"] = "none";
  if (r.chance(0.12)) {
    stream = stream.subarray(0, r.int(1, stream.length));
    mutations.push({ name: "truncated" });
  }
  if (r.chance(0.1)) {
    end = "fin";
    mutations.push({ name: "client FIN" });
  } else if (r.chance(0.05)) {
    end = "reset";
    mutations.push({ name: "client reset" });
  }
  const pieces: FuzzCase["pieces"] = [];
  const split = r.chance(0.5) ? r.split(stream, 10) : [stream];
  for (const bytes of split) pieces.push({ bytes, delay: r.chance(0.5) ? 0 : r.int(1, 12) });
  return { seed, id: caseId, reqs, pieces, end, mutations, clean: mutations.length === 0 };
}

/** printable form of bytes for failure messages (replay with FUZZ_SEED) */
export function show(b: Buffer, max = 2000): string {
  const s = JSON.stringify(b.subarray(0, max).toString("latin1"));
  return b.length > max ? `${s}…(+${b.length - max} bytes)` : s;
}
