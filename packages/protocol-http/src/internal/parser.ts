/**
 * The one place that touches http-parser-js. Its HTTPParser keeps the body states (sized,
 * chunked, close-delimited) and hands body bytes out as slices of the input buffer (no copy);
 * we replace its head parsing with a strict version (smuggling shapes, limits) and its
 * execute loop with one that can stop after a message (pipelining) and never throws.
 */
import httpParserJs from "http-parser-js";
import { HttpParseError } from "../errors-response.js";
import { bodilessStatus } from "../head.js";

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
  finish(): Error | undefined;
  [key: number]: (...args: never[]) => unknown;
  [key: string]: unknown;
}

const HTTPParser = (httpParserJs as unknown as { HTTPParser: { new (type: string): ParserCore; methods: string[]; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number } }).HTTPParser;
const METHODS = HTTPParser.methods;
const K_HEADERS = HTTPParser.kOnHeaders;
const K_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete;
const K_BODY = HTTPParser.kOnBody;
const K_COMPLETE = HTTPParser.kOnMessageComplete;

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

/** What a framer reports; `onHead` returns true to skip the body (HEAD responses, 204, 304). */
export interface FramerHandler {
  onHead(head: RawHead): boolean;
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
const HEAD_STATES: Record<string, true | undefined> = { REQUEST_LINE: true, RESPONSE_LINE: true, HEADER: true };
const identity = (v: unknown): unknown => v;

/**
 * Frames one direction of an HTTP/1.x connection. `execute` parses as much as it can and
 * returns the bytes consumed; it stops early after a message when `stopAfterMessage` is set,
 * or after an upgrade head; `error` holds the failure when it returns -1.
 */
export class Framer {
  readonly kind: "request" | "response";
  error: HttpParseError | undefined;
  /** stop the execute loop at the next opportunity (set by handlers) */
  stop = false;
  #p: ParserCore;
  #limits: FramerLimits;
  #handler: FramerHandler;
  #headerCount = 0;
  #method = "";

  constructor(kind: "request" | "response", handler: FramerHandler, limits: FramerLimits) {
    this.kind = kind;
    this.#handler = handler;
    this.#limits = limits;
    const p = new HTTPParser(kind === "request" ? "REQUEST" : "RESPONSE");
    this.#p = p;
    const self = this;
    // one shared no-op wrapper instead of a closure per callback
    p.userCall = () => identity;
    p.reinitialize = (type: "REQUEST" | "RESPONSE") => {
      p.initialize(type);
      self.#headerCount = 0;
    };
    p.consumeLine = () => this.#consumeLine();
    p.parseHeader = (line: string, headers: string[]) => this.#parseHeader(line, headers);
    p.REQUEST_LINE = () => this.#requestLine();
    p.RESPONSE_LINE = () => this.#responseLine();
    p.BODY_CHUNKHEAD = () => this.#chunkHead();
    // http-parser-js passes one info object (its default) or positional arguments (when
    // something read HTTPParser.kOnExecute): accept both
    p[K_HEADERS_COMPLETE] = ((a: number | ParserCore["info"], minor: number, headers: string[], _m: number, url: string, status: number, msg: string, upgrade: boolean, keepAlive: boolean) => {
      if (typeof a === "object") {
        const i = a as ParserCore["info"] & { shouldKeepAlive: boolean };
        return this.#onHeadersComplete(i.versionMajor ?? 1, i.versionMinor ?? 1, i.headers, i.url ?? "", i.statusCode ?? 0, i.statusMessage ?? "", i.upgrade, i.shouldKeepAlive);
      }
      return this.#onHeadersComplete(a, minor, headers, url, status, msg, upgrade, keepAlive);
    }) as never;
    p[K_BODY] = ((chunk: Buffer) => handler.onBody(chunk)) as never;
    p[K_HEADERS] = ((trailers: string[]) => handler.onTrailers(trailers)) as never;
    p[K_COMPLETE] = (() => {
      handler.onComplete();
    }) as never;
  }

  /** True between messages (nothing of the next message parsed yet). */
  get idle(): boolean {
    const p = this.#p;
    return (p.state === "REQUEST_LINE" || p.state === "RESPONSE_LINE") && p.line === "";
  }

  /** True while reading a close-delimited body (ends only with the connection). */
  get closeDelimited(): boolean {
    return this.#p.state === "BODY_RAW";
  }

  /** Parses `chunk[start..]`; returns bytes consumed, or -1 with `error` set. */
  execute(chunk: Buffer, start = 0): number {
    const p = this.#p;
    const end = chunk.length;
    p.chunk = chunk;
    p.offset = start;
    p.end = end;
    this.stop = false;
    try {
      while (p.offset < end && !this.stop) {
        if ((p[p.state] as () => boolean | undefined)()) break;
      }
    } catch (err) {
      p.hadError = true;
      p.chunk = null;
      this.error = err instanceof HttpParseError ? err : new HttpParseError(this.kind === "request" ? 400 : 502, (err as Error)?.message ?? "parse error");
      return -1;
    }
    p.chunk = null;
    return p.offset - start;
  }

  /** The peer closed: completes a close-delimited body; an error when a message was cut. */
  finish(): HttpParseError | undefined {
    const p = this.#p;
    if (p.hadError) return this.error;
    if (p.state === "BODY_RAW") {
      p.state = this.kind === "request" ? "REQUEST_LINE" : "RESPONSE_LINE";
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
    this.#p.initialize(this.kind === "request" ? "REQUEST" : "RESPONSE");
    this.#headerCount = 0;
    this.error = undefined;
  }

  #consumeLine(): string | undefined {
    const p = this.#p;
    const chunk = p.chunk!;
    const end = p.end;
    const i = chunk.indexOf(10, p.offset);
    if (i === -1 || i >= end) {
      p.line += chunk.toString("latin1", p.offset, end);
      p.offset = end;
      if (p.line.length > this.#limits.maxHeaderSize) {
        if (p.state === "REQUEST_LINE") throw new HttpParseError(414, "request line too long");
        throw new HttpParseError(this.kind === "request" ? 431 : 502, "header line too long");
      }
      return undefined;
    }
    let line = p.line + chunk.toString("latin1", p.offset, i);
    p.line = "";
    p.offset = i + 1;
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    else if (this.#limits.strict && HEAD_STATES[p.state] === true) throw new HttpParseError(400, "bare LF in head");
    if (HEAD_STATES[p.state] === true) {
      p.headerSize += line.length + 2;
      if (p.headerSize > this.#limits.maxHeaderSize) {
        throw new HttpParseError(p.state === "REQUEST_LINE" ? 414 : this.kind === "request" ? 431 : 502, "head too large");
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
    const p = this.#p;
    const line = this.#consumeLine();
    if (!line) return; // partial, or an empty line before the request (allowed)
    const m = REQUEST_LINE.exec(line);
    if (m === null) throw new HttpParseError(400, "malformed request line");
    const maxUrl = this.#limits.maxUrlLength;
    if (m[2]!.length > maxUrl && maxUrl > 0) throw new HttpParseError(414, "URI too long");
    if (m[3] !== "1") throw new HttpParseError(505, "HTTP version not supported");
    const info = p.info;
    const idx = METHODS.indexOf(m[1]!);
    // unknown extension methods are fine for a proxy: keep the name, tell the parser "GET"
    this.#method = m[1]!;
    info.method = idx === -1 ? 1 : idx;
    info.url = m[2]!;
    info.versionMajor = 1;
    info.versionMinor = m[4] === "0" ? 0 : 1;
    p.body_bytes = 0;
    p.state = "HEADER";
  }

  #responseLine(): void {
    const p = this.#p;
    const line = this.#consumeLine();
    if (line === undefined) return;
    const m = RESPONSE_LINE.exec(line);
    if (m === null) throw new HttpParseError(502, "malformed status line");
    if (m[1] !== "1") throw new HttpParseError(502, "unsupported HTTP version from upstream");
    const info = p.info;
    info.versionMajor = 1;
    info.versionMinor = m[2] === "0" ? 0 : 1;
    const status = +m[3]!;
    if (status < 100) throw new HttpParseError(502, "invalid status code");
    info.statusCode = status;
    info.statusMessage = m[4] ?? "";
    if (bodilessStatus(status)) p.body_bytes = 0;
    p.state = "HEADER";
  }

  #chunkHead(): void {
    const p = this.#p;
    const line = this.#consumeLine();
    if (line === undefined) return;
    const m = CHUNK_SIZE.exec(line);
    if (m === null) throw new HttpParseError(this.kind === "request" ? 400 : 502, "invalid chunk size");
    const size = parseInt(m[1]!, 16);
    p.body_bytes = size;
    p.state = size === 0 ? "BODY_CHUNKTRAILERS" : "BODY_CHUNK";
  }

  #onHeadersComplete(major: number, minor: number, headers: string[], url: string, status: number, msg: string, upgrade: boolean, keepAlive: boolean): number {
    const p = this.#p;
    const request = this.kind === "request";
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
    // http-parser-js treats `+value` as the length and lets both CL and TE through: the
    // handler validates framing (and throws HttpParseError) before we rely on body_bytes
    const skip = this.#handler.onHead(head);
    if (request && upgrade) {
      this.stop = true;
      return 1;
    }
    if (!request && (bodilessStatus(status) || this.#method === "HEAD")) return 1;
    if (skip) return 1;
    if (!request && p.body_bytes === null && !p.isChunked) return 0; // close-delimited
    return 0;
  }
}
