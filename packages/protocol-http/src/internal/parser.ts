/**
 * The one place that touches http-parser-js. Its HTTPParser keeps the body states (sized,
 * chunked, close-delimited) and hands body bytes out as slices of the input buffer (no copy);
 * we replace its head parsing with a strict version (smuggling shapes, limits) and its
 * execute loop with one that can stop after a message (pipelining) and never throws.
 */
import httpParserJs from "http-parser-js";
import { HttpParseError } from "../errors-response.js";
import { bodilessStatus, BODY_CHUNKED, BODY_LENGTH, BODY_NONE, type BodyKind } from "../body-kind.js";

/** The internals of http-parser-js's HTTPParser we rely on (it ships no such types). */
interface ParserCore {
  type: "REQUEST" | "RESPONSE";
  state: string;
  info: { headers: string[]; upgrade: boolean; method?: number; url?: string; versionMajor?: number; versionMinor?: number; statusCode?: number; statusMessage?: string };
  trailers: string[];
  line: string;
  chunk: Buffer | null;
  offset: number;
  end: number;
  headerSize: number;
  body_bytes: number | null;
  isChunked: boolean;
  connection: string;
  hadError: boolean;
  initialize(type: "REQUEST" | "RESPONSE"): void;
  HEADER(): boolean | undefined;
  BODY_SIZED(): void;
}

const HTTPParser = (httpParserJs as unknown as { HTTPParser: { new (type: "REQUEST" | "RESPONSE"): ParserCore; prototype: ParserCore; methods: string[]; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number } }).HTTPParser;
const METHODS = HTTPParser.methods;
const K_HEADERS = HTTPParser.kOnHeaders;
const K_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete;
const K_BODY = HTTPParser.kOnBody;
const K_COMPLETE = HTTPParser.kOnMessageComplete;
const CALLBACKS = [K_HEADERS, K_HEADERS_COMPLETE, K_BODY, K_COMPLETE];

/** A parsed message head, in the flat `[name, value, name, value…]` form the parser produces. */
export interface RawHead {
  versionMajor: number;
  versionMinor: number;
  /** flat raw pairs: names keep their case, repeats are kept */
  headers: string[];
  /** request only */
  method: string;
  url: string;
  /** response only */
  statusCode: number;
  statusMessage: string;
  /** Upgrade + Connection: upgrade (request), or a 101 (response) */
  upgrade: boolean;
  /** the parser's view of Connection/version semantics */
  shouldKeepAlive: boolean;
}

/**
 * What a framer reports. `onHead` returns how the body that follows is delimited (the
 * handler's analysis of the head, `analyzeRequest` / `analyzeResponse`): the framer reads the
 * body exactly that way, so one decision frames both what is read and what is sent on.
 * BODY_NONE skips the body (HEAD responses, 204, 304, interim responses).
 */
export interface FramerHandler {
  onHead(head: RawHead): BodyKind;
  onBody(chunk: Buffer): void;
  onTrailers(trailers: string[]): void;
  onComplete(): void;
}

export interface FramerLimits {
  /** most bytes in the whole head (request line + header lines) */
  maxHeaderSize: number;
  /** most header lines (0: no limit) */
  maxHeaderCount: number;
  /** longest request-target (requests only; 0: no limit beyond maxHeaderSize) */
  maxUrlLength: number;
  /** reject bare LF line endings and other lenient shapes (requests) */
  strict: boolean;
}

// RFC 9110 token characters
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;
// CTLs other than HTAB are refused in values (bare CR/LF, NUL…)
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ \x00-\x1f\x7f]+) HTTP\/(\d)\.(\d)$/;
const RESPONSE_LINE = /^HTTP\/(\d)\.(\d) (\d{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/;
/** the states that read head lines (compared by identity: V8 interns the constant strings) */
function inHead(state: string): boolean {
  return state === "HEADER" || state === "REQUEST_LINE" || state === "RESPONSE_LINE";
}
const identity = (v: unknown): unknown => v;

/**
 * Frames one direction of an HTTP/1.x connection. `execute` parses as much as it can and
 * returns the bytes consumed; it stops early after a message when `stopAfterMessage` is set,
 * or after an upgrade head; `error` holds the failure when it returns -1.
 *
 * The framer is an http-parser-js HTTPParser: its head states and callbacks are replaced by
 * prototype methods of this subclass (not per-instance closures), so a framer is one object.
 */
export class Framer extends HTTPParser {
  error: HttpParseError | undefined;
  /** stop the execute loop at the next opportunity (set by handlers) */
  stop = false;
  #limits: FramerLimits;
  #handler: FramerHandler;
  #headerCount = 0;
  #method = "";

  constructor(kind: "request" | "response", handler: FramerHandler, limits: FramerLimits) {
    super(kind === "request" ? "REQUEST" : "RESPONSE");
    // the fields execute() sets, declared up front (one shape, stored in the object)
    this.chunk = null;
    this.offset = 0;
    this.end = 0;
    this.error = undefined;
    this.#handler = handler;
    this.#limits = limits;
    // own elements pointing at the shared prototype methods: http-parser-js calls this[3](…)
    // per body chunk, and an integer key found only on the prototype takes V8's slow keyed
    // load (body chunks measured 50% slower). Request framers are pooled (runtime.ts), so
    // the elements are not paid per idle connection.
    const own = this as unknown as Record<number, unknown>;
    const proto = Framer.prototype as unknown as Record<number, unknown>;
    for (const k of CALLBACKS) own[k] = proto[k];
  }

  /** Hands an idle framer to another handler (framers are reused across connections). */
  bind(handler: FramerHandler, limits: FramerLimits): void {
    this.#handler = handler;
    this.#limits = limits;
  }

  get kind(): "request" | "response" {
    return this.type === "REQUEST" ? "request" : "response";
  }

  // ---- http-parser-js hooks (called by HTTPParser's own states and execute loop) --------------

  /** @internal the state names as shared constants (http-parser-js builds `type + "_LINE"`) */
  override initialize(type: "REQUEST" | "RESPONSE"): void {
    super.initialize(type);
    this.state = type === "REQUEST" ? "REQUEST_LINE" : "RESPONSE_LINE";
  }

  /** @internal after each message */
  reinitialize(type: "REQUEST" | "RESPONSE"): void {
    this.initialize(type);
    this.#headerCount = 0;
    // a request's method is its own; a response framer keeps the one expect() gave it (a 1xx
    // is a message of its own, and the final response still answers that method)
    if (type === "REQUEST") this.#method = "";
  }

  /** The method of the request being read ("" before its request line); requests only. */
  get requestMethod(): string {
    return this.type === "REQUEST" ? this.#method : "";
  }

  /** @internal one shared no-op wrapper instead of a closure per callback */
  userCall(): (v: unknown) => unknown {
    return identity;
  }

  /** @internal */
  consumeLine(): string | undefined {
    return this.#consumeLine();
  }

  /** @internal */
  parseHeader(line: string, headers: string[]): void {
    this.#parseHeader(line, headers);
  }

  /** @internal */
  REQUEST_LINE(): void {
    this.#requestLine();
  }

  /** @internal */
  RESPONSE_LINE(): void {
    this.#responseLine();
  }

  /** @internal */
  BODY_CHUNKHEAD(): void {
    this.#chunkHead();
  }

  // http-parser-js passes one info object (its default) or positional arguments (when
  // something read HTTPParser.kOnExecute): accept both
  /** @internal */
  [K_HEADERS_COMPLETE](a: number | ParserCore["info"], minor: number, headers: string[], _m: number, url: string, status: number, msg: string, upgrade: boolean, keepAlive: boolean): number {
    if (typeof a === "object") {
      const i = a as ParserCore["info"] & { shouldKeepAlive: boolean };
      return this.#onHeadersComplete(i.versionMajor ?? 1, i.versionMinor ?? 1, i.headers, i.url ?? "", i.statusCode ?? 0, i.statusMessage ?? "", i.upgrade, i.shouldKeepAlive);
    }
    return this.#onHeadersComplete(a, minor, headers, url, status, msg, upgrade, keepAlive);
  }

  /** @internal */
  [K_BODY](chunk: Buffer): void {
    this.#handler.onBody(chunk);
  }

  /** @internal */
  [K_HEADERS](trailers: string[]): void {
    this.#handler.onTrailers(trailers);
  }

  /** @internal */
  [K_COMPLETE](): void {
    this.#handler.onComplete();
  }

  /** True between messages (nothing of the next message parsed yet). */
  get idle(): boolean {
    return (this.state === "REQUEST_LINE" || this.state === "RESPONSE_LINE") && this.line === "";
  }

  /** True while reading a close-delimited body (ends only with the connection). */
  get closeDelimited(): boolean {
    return this.state === "BODY_RAW";
  }

  /** Parses `chunk[start..]`; returns bytes consumed, or -1 with `error` set. */
  execute(chunk: Buffer, start = 0): number {
    const end = chunk.length;
    this.chunk = chunk;
    this.offset = start;
    this.end = end;
    this.stop = false;
    try {
      while (this.offset < end && !this.stop) {
        // a switch instead of this[this.state](): a keyed load whose key keeps changing is
        // megamorphic, and it ran once per state of every message
        const state = this.state;
        let done: boolean | undefined;
        if (state === "HEADER") done = this.HEADER();
        else if (state === "BODY_SIZED") this.BODY_SIZED();
        else if (state === "REQUEST_LINE") this.#requestLine();
        else if (state === "RESPONSE_LINE") this.#responseLine();
        else done = (this as unknown as Record<string, () => boolean | undefined>)[state]!();
        if (done === true) break;
      }
    } catch (err) {
      this.hadError = true;
      this.chunk = null;
      this.error = err instanceof HttpParseError ? err : new HttpParseError(this.kind === "request" ? 400 : 502, (err as Error)?.message ?? "parse error");
      return -1;
    }
    this.chunk = null;
    return this.offset - start;
  }

  /** The peer closed: completes a close-delimited body; an error when a message was cut. */
  finish(): HttpParseError | undefined {
    if (this.hadError) return this.error;
    if (this.state === "BODY_RAW") {
      this.state = this.kind === "request" ? "REQUEST_LINE" : "RESPONSE_LINE";
      this.#handler.onComplete();
      return undefined;
    }
    if (this.idle) return undefined;
    return new HttpParseError(this.kind === "request" ? 400 : 502, "connection closed inside a message");
  }

  /** Sets the method of the request this response answers (HEAD → no body). */
  expect(method: string): void {
    this.#method = method;
  }

  /** Forgets any partial state (a fresh connection). */
  reset(): void {
    this.initialize(this.kind === "request" ? "REQUEST" : "RESPONSE");
    this.#headerCount = 0;
    this.#method = "";
    this.error = undefined;
  }

  #consumeLine(): string | undefined {
    const chunk = this.chunk!;
    const end = this.end;
    const i = chunk.indexOf(10, this.offset);
    if (i === -1 || i >= end) {
      this.line += chunk.toString("latin1", this.offset, end);
      this.offset = end;
      if (this.line.length > this.#limits.maxHeaderSize) {
        if (this.state === "REQUEST_LINE") throw new HttpParseError(414, "request line too long");
        throw new HttpParseError(this.kind === "request" ? 431 : 502, "header line too long");
      }
      return undefined;
    }
    let line = this.line + chunk.toString("latin1", this.offset, i);
    this.line = "";
    this.offset = i + 1;
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    else if (this.#limits.strict && inHead(this.state)) throw new HttpParseError(400, "bare LF in head");
    if (inHead(this.state)) {
      this.headerSize += line.length + 2;
      if (this.headerSize > this.#limits.maxHeaderSize) {
        throw new HttpParseError(this.state === "REQUEST_LINE" ? 414 : this.kind === "request" ? 431 : 502, "head too large");
      }
    }
    return line;
  }

  #parseHeader(line: string, headers: string[]): void {
    const colon = line.indexOf(":");
    const c0 = line.charCodeAt(0);
    if (c0 === 32 || c0 === 9) throw new HttpParseError(this.kind === "request" ? 400 : 502, "obsolete line folding");
    if (colon <= 0) throw new HttpParseError(this.kind === "request" ? 400 : 502, "malformed header line");
    for (let i = 0; i < colon; i++) {
      const c = line.charCodeAt(i);
      if (c > 127 || TCHAR[c] !== 1) throw new HttpParseError(this.kind === "request" ? 400 : 502, "invalid header name");
    }
    const maxCount = this.#limits.maxHeaderCount;
    if (++this.#headerCount > maxCount && maxCount > 0) {
      throw new HttpParseError(this.kind === "request" ? 431 : 502, "too many headers");
    }
    let s = colon + 1;
    let e = line.length;
    while (s < e && (line.charCodeAt(s) === 32 || line.charCodeAt(s) === 9)) s++;
    while (e > s && (line.charCodeAt(e - 1) === 32 || line.charCodeAt(e - 1) === 9)) e--;
    const value = line.slice(s, e);
    if (BAD_VALUE.test(value)) throw new HttpParseError(this.kind === "request" ? 400 : 502, "invalid header value");
    headers.push(line.slice(0, colon), value);
  }

  #requestLine(): void {
    const line = this.#consumeLine();
    if (!line) return; // partial, or an empty line before the request (allowed)
    const m = REQUEST_LINE.exec(line);
    if (m === null) throw new HttpParseError(400, "malformed request line");
    const maxUrl = this.#limits.maxUrlLength;
    if (m[2]!.length > maxUrl && maxUrl > 0) throw new HttpParseError(414, "URI too long");
    if (m[3] !== "1") throw new HttpParseError(505, "HTTP version not supported");
    const info = this.info;
    const idx = METHODS.indexOf(m[1]!);
    // unknown extension methods are fine for a proxy: keep the name, tell the parser "GET";
    // a known one is kept as the shared constant (not a slice of the line)
    this.#method = idx === -1 ? m[1]! : METHODS[idx]!;
    info.method = idx === -1 ? 1 : idx;
    info.url = m[2]!;
    info.versionMajor = 1;
    info.versionMinor = m[4] === "0" ? 0 : 1;
    this.body_bytes = 0;
    this.state = "HEADER";
  }

  #responseLine(): void {
    const line = this.#consumeLine();
    if (line === undefined) return;
    const m = RESPONSE_LINE.exec(line);
    if (m === null) throw new HttpParseError(502, "malformed status line");
    if (m[1] !== "1") throw new HttpParseError(502, "unsupported HTTP version from upstream");
    const info = this.info;
    info.versionMajor = 1;
    info.versionMinor = m[2] === "0" ? 0 : 1;
    const status = +m[3]!;
    if (status < 100) throw new HttpParseError(502, "invalid status code");
    info.statusCode = status;
    info.statusMessage = m[4] ?? "";
    if (bodilessStatus(status)) this.body_bytes = 0;
    this.state = "HEADER";
  }

  #chunkHead(): void {
    const line = this.#consumeLine();
    if (line === undefined) return;
    const m = CHUNK_SIZE.exec(line);
    if (m === null) throw new HttpParseError(this.kind === "request" ? 400 : 502, "invalid chunk size");
    const size = parseInt(m[1]!, 16);
    this.body_bytes = size;
    this.state = size === 0 ? "BODY_CHUNKTRAILERS" : "BODY_CHUNK";
  }

  #onHeadersComplete(major: number, minor: number, headers: string[], url: string, status: number, msg: string, upgrade: boolean, keepAlive: boolean): number {
    const request = this.kind === "request";
    // an Upgrade request that declares a body is an ordinary request (its Upgrade is dropped as
    // hop-by-hop): stopping after the head would leave the body to be parsed as the next
    // request on this connection, and send it upstream as the start of someone else's.
    // (http-parser-js clears isChunked for upgrades: the header list says whether it was set.)
    if (request && upgrade) {
      const chunked = hasTransferEncoding(headers);
      if (chunked || (this.body_bytes !== null && this.body_bytes > 0)) {
        upgrade = false;
        if (chunked) this.isChunked = true; // any other coding is refused by the handler (400)
      }
    }
    const head: RawHead = {
      versionMajor: major,
      versionMinor: minor,
      headers,
      method: request ? this.#method : "",
      url: request ? url : "",
      statusCode: request ? 0 : status,
      statusMessage: request ? "" : msg,
      upgrade,
      shouldKeepAlive: keepAlive,
    };
    // http-parser-js guesses framing on its own (chunked only for a Transfer-Encoding of exactly
    // "chunked", `+value` as the length): the handler's analysis, which validated the head and
    // threw HttpParseError for a bad one, decides instead
    const kind = this.#handler.onHead(head);
    if (request && upgrade) {
      this.stop = true;
      return 1;
    }
    if (!request && (bodilessStatus(status) || this.#method === "HEAD")) return 1;
    if (kind === BODY_NONE) return 1;
    if (kind === BODY_CHUNKED) {
      this.isChunked = true;
      this.body_bytes = null;
    } else {
      this.isChunked = false;
      // BODY_LENGTH: the Content-Length http-parser-js read (the analysis checked it is one
      // valid number); BODY_CLOSE: read until the connection ends
      if (kind !== BODY_LENGTH) this.body_bytes = null;
    }
    return 0;
  }
}

/** Whether a flat header list (name, value, …) has a Transfer-Encoding line. */
function hasTransferEncoding(headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 17 && name.toLowerCase() === "transfer-encoding") return true;
  }
  return false;
}
