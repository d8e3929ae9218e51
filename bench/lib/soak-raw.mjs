// Raw-socket HTTP/1.1 helpers for the soak load generator (bench/lib/soak-load.mjs): an
// incremental response reader, a body checker and the malformed requests with their expected answers.
import net from "node:net";
import { BIG_LEN, bigByte } from "./soak-backend.mjs";

export const HOST = "127.0.0.1";

/** A raw socket to the proxy with its error handler attached at once (the error is kept). */
export function raw(port, track) {
  const s = net.connect({ host: HOST, port, noDelay: true });
  s.on("error", (e) => (s.soakError ??= e));
  track(s);
  return s;
}

/** Counts a body and checks a sample of its bytes against /big's pattern; keeps its first 64 bytes. */
export class Body {
  len = 0;
  first = Buffer.alloc(0);
  patternOk = true;
  add(b) {
    if (this.first.length < 64) this.first = Buffer.concat([this.first, b.subarray(0, 64 - this.first.length)]);
    for (let j = (1024 - (this.len % 1024)) % 1024; j < b.length; j += 1024) {
      if (b[j] !== bigByte(this.len + j)) this.patternOk = false;
    }
    this.len += b.length;
  }
  text() {
    return this.first.toString("latin1");
  }
  isBig() {
    return this.len === BIG_LEN && this.patternOk;
  }
}

const CRLF2 = Buffer.from("\r\n\r\n");

/**
 * Incremental response reader: push() socket chunks, end() at EOF. Completed responses are
 * { status, headers (lower-case names), body: Body, trailers } in `responses`; `error` is set
 * on a framing error; after a 101 every further byte goes to `tunnel` (a Buffer list).
 */
export class ResponseReader {
  responses = [];
  error = undefined;
  tunnel = undefined;
  #buf = Buffer.alloc(0);
  #state = "head";
  #cur = undefined;
  #left = 0;

  push(chunk) {
    let b = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    this.#buf = Buffer.alloc(0);
    while (b.length > 0 && !this.error) {
      if (this.#state === "tunnel") return void this.tunnel.push(b);
      if (this.#state === "body" || this.#state === "chunk" || this.#state === "eof") {
        const n = this.#state === "eof" ? b.length : Math.min(this.#left, b.length);
        this.#cur.body.add(b.subarray(0, n));
        b = b.subarray(n);
        this.#left -= n;
        if (this.#left === 0 && this.#state === "body") this.#finish();
        else if (this.#left === 0 && this.#state === "chunk") this.#state = "chunk-end";
        continue;
      }
      const end = this.#state === "head" ? b.indexOf(CRLF2) : this.#state === "trailers" ? findBlock(b) : b.indexOf("\r\n");
      if (end < 0) {
        if (b.length > 65_536) this.error = `${this.#state} too long`;
        this.#buf = b;
        return;
      }
      const text = b.subarray(0, end).toString("latin1");
      b = b.subarray(end + (this.#state === "head" || (this.#state === "trailers" && text !== "") ? 4 : 2));
      this.#line(text);
    }
  }

  end() {
    if (this.#state === "eof") this.#finish();
  }

  /** a head, a chunk-size line, the CRLF after a chunk's data, or the trailer block */
  #line(text) {
    if (this.#state === "head") {
      const [statusLine, ...lines] = text.split("\r\n");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
      if (!m) return void (this.error = `bad status line ${JSON.stringify(statusLine.slice(0, 40))}`);
      this.#cur = { status: Number(m[1]), headers: parseFields(lines), body: new Body(), trailers: {} };
      const h = this.#cur.headers;
      if (this.#cur.status === 101) {
        this.responses.push(this.#cur);
        this.#state = "tunnel";
        this.tunnel = [];
      } else if (this.#cur.status < 200 || this.#cur.status === 204 || this.#cur.status === 304) this.#finish();
      else if (h["transfer-encoding"] === "chunked") this.#state = "size";
      else if (h["content-length"] !== undefined) {
        this.#left = Number(h["content-length"]);
        if (this.#left === 0) this.#finish();
        else this.#state = "body";
      } else this.#state = "eof";
    } else if (this.#state === "size") {
      const size = parseInt(text, 16);
      if (!/^[0-9a-fA-F]+/.test(text) || !Number.isFinite(size)) return void (this.error = `bad chunk size ${text.slice(0, 20)}`);
      if (size === 0) this.#state = "trailers";
      else [this.#state, this.#left] = ["chunk", size];
    } else if (this.#state === "chunk-end") {
      if (text !== "") this.error = "no CRLF after chunk data";
      this.#state = "size";
    } else if (this.#state === "trailers") {
      this.#cur.trailers = parseFields(text === "" ? [] : text.split("\r\n"));
      this.#finish();
    }
  }

  #finish() {
    if (this.#cur.status >= 100 && this.#cur.status < 200) {
      this.#state = "head"; // interim response: the final one follows
      return;
    }
    this.responses.push(this.#cur);
    this.#cur = undefined;
    this.#state = "head";
  }
}

/** end of a head or trailer block: index of "\r\n\r\n", or 0 when the block is empty ("\r\n" first) */
function findBlock(b) {
  if (b.length >= 2 && b[0] === 13 && b[1] === 10) return 0;
  return b.indexOf(CRLF2);
}

function parseFields(lines) {
  const h = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    if (i > 0) h[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return h;
}

/**
 * Reads responses from a raw socket: resolves when `want` responses are complete (or, with
 * waitClose, once the socket has closed too), when the socket closes first, or after timeoutMs.
 * Result: { responses, closed, timedOut, error, reader }.
 */
export function readResponses(s, want, { waitClose = false, timeoutMs = 10_000, reader = new ResponseReader() } = {}) {
  return new Promise((resolve) => {
    let closed = false;
    const timer = setTimeout(() => done(true), timeoutMs);
    const done = (timedOut = false) => {
      const enough = reader.responses.length >= want || reader.error;
      if (closed || timedOut || (enough && !waitClose)) {
        clearTimeout(timer);
        s.off("data", onData);
        s.off("close", onClose);
        const error = reader.error ?? s.soakError?.code ?? (timedOut ? `no ${closed || enough ? "close" : "answer"} within ${timeoutMs} ms` : undefined);
        resolve({ responses: reader.responses, closed, timedOut, error, reader });
      }
    };
    const onData = (d) => {
      reader.push(d);
      done();
    };
    const onClose = () => {
      reader.end();
      closed = true;
      done();
    };
    s.on("data", onData);
    s.on("close", onClose);
    if (s.destroyed) onClose();
  });
}

const CRLF = "\r\n";
const req = (lines, body = "") => Buffer.from(lines.join(CRLF) + CRLF + CRLF + body, "latin1");

/** Requests the proxy must refuse: the status it must answer and whether it must then close. */
export const MALFORMED = [
  // request smuggling shapes → 400 and close, and the smuggled request must not be answered
  { name: "cl+te", status: 400, close: true, bytes: req(["POST / HTTP/1.1", "Host: a", "Content-Length: 6", "Transfer-Encoding: chunked"], "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n") },
  { name: "two-cl", status: 400, close: true, bytes: req(["POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Content-Length: 40"], "abc") },
  { name: "te-gzip", status: 400, close: true, bytes: req(["POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"], "3\r\nabc\r\n0\r\n\r\n") },
  { name: "te-1.0", status: 400, close: true, bytes: req(["POST / HTTP/1.0", "Host: a", "Transfer-Encoding: chunked"], "3\r\nabc\r\n0\r\n\r\n") },
  { name: "obs-fold", status: 400, close: true, bytes: req(["GET / HTTP/1.1", "Host: a", "X-A: b", " c"]) },
  { name: "bare-lf", status: 400, close: true, bytes: Buffer.from("GET / HTTP/1.1\nHost: a\n\n") },
  { name: "space-colon", status: 400, close: true, bytes: req(["GET / HTTP/1.1", "Host : a"]) },
  { name: "no-host", status: 400, close: true, bytes: req(["GET / HTTP/1.1", "Accept: */*"]) },
  { name: "two-hosts", status: 400, close: true, bytes: req(["GET / HTTP/1.1", "Host: a", "Host: b"]) },
  { name: "ctl-char", status: 400, close: true, bytes: req(["GET / HTTP/1.1", "Host: a", "X-A: b\x01c"]) },
  { name: "bad-chunk", status: 400, close: true, bytes: req(["POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"], "zz\r\nabc\r\n0\r\n\r\n") },
  { name: "dot-climb", status: 400, close: true, bytes: req(["GET /../../etc/passwd HTTP/1.1", "Host: a"]) },
  { name: "garbage", status: 400, close: true, bytes: Buffer.from("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", "latin1") },
  // other refusals
  { name: "connect", status: 405, close: false, bytes: req(["CONNECT a:443 HTTP/1.1", "Host: a:443"]) },
  { name: "http-2.0", status: 505, close: false, bytes: req(["GET / HTTP/2.0", "Host: a"]) },
  { name: "expect", status: 417, close: false, bytes: req(["POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Expect: teapot"], "abc") },
  { name: "huge-head", status: 431, close: false, bytes: req(["GET / HTTP/1.1", "Host: a", `X-Big: ${"b".repeat(20_000)}`]) },
  { name: "long-url", status: 414, close: false, bytes: req([`GET /${"u".repeat(9000)} HTTP/1.1`, "Host: a"]) },
];

export const get = (path, extra = []) => req([`GET ${path} HTTP/1.1`, "Host: soak", ...extra]);
