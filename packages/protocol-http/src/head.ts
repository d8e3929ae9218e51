/**
 * Message heads: validation of request framing (the smuggling shapes), the routing fields, and
 * serialization of the heads we send, minus the hop-by-hop headers we own (Connection and the
 * names it lists, Keep-Alive, Proxy-Connection, Transfer-Encoding, TE, Upgrade outside a tunnel).
 * Heads are built as one latin1 string so header bytes pass through unchanged.
 */
import { bodilessStatus, BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE, type BodyKind } from "./body-kind.js";
import { HttpParseError, statusText } from "./errors-response.js";
import type { RawHead } from "./internal/parser.js";


/** What the proxy needs to know about a request head. */
export interface RequestFacts {
  method: string;
  /**
   * origin-form target forwarded upstream ("/p?q", or "*"): the normalised target (see
   * `normalizeTarget`), or the target as sent when the listener's `normalizePath` is false
   */
  url: string;
  /** the normalised target used for routing ("/p?q"; "/" for "*"), whatever `normalizePath` says */
  routePath: string;
  /** lower-cased host without port, for routing */
  host: string;
  /** Host value to send (the authority of an absolute-form target replaces the Host header) */
  hostOverride: string | undefined;
  bodyKind: BodyKind;
  contentLength: number;
  expectContinue: boolean;
  keepAlive: boolean;
  upgrade: boolean;
  http10: boolean;
  /** lower-cased names listed in Connection (beyond close/keep-alive/upgrade) to drop */
  connectionTokens: string[] | undefined;
}

const DIGITS = /^\d{1,15}$/;
const ABSOLUTE = /^(https?):\/\/([^/?#]+)([^#]*)/i;

/**
 * Checks a parsed request head and extracts what routing and framing need. Throws HttpParseError.
 * `normalize` (the listener's `normalizePath`) forwards the normalised target; routing uses it
 * either way.
 */
export function analyzeRequest(head: RawHead, normalize = true): RequestFacts {
  if (head.method === "CONNECT") throw new HttpParseError(405, "CONNECT is not supported");
  const h = head.headers;
  let host: string | undefined;
  let cl: string | undefined;
  let te: string | undefined;
  let expect = false;
  let connTokens: string[] | undefined;
  let connClose = false;
  let connKeepAlive = false;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!;
    const len = name.length;
    if (len !== 4 && len !== 14 && len !== 17 && len !== 6 && len !== 10) continue;
    const n = name.toLowerCase();
    const v = h[i + 1]!;
    if (n === "host") {
      if (host !== undefined) throw new HttpParseError(400, "duplicate Host");
      // userinfo has no place in a Host (RFC 9110 §7.2 is uri-host [":" port])
      if (v.includes("@")) throw new HttpParseError(400, "userinfo in Host");
      host = v;
    } else if (n === "content-length") {
      if (cl !== undefined) throw new HttpParseError(400, "duplicate Content-Length");
      if (!DIGITS.test(v)) throw new HttpParseError(400, "invalid Content-Length");
      cl = v;
    } else if (n === "transfer-encoding") {
      if (te !== undefined) throw new HttpParseError(400, "repeated Transfer-Encoding");
      te = v;
    } else if (n === "expect") {
      if (v.toLowerCase() === "100-continue") expect = true;
      else throw new HttpParseError(417, "unsupported Expect");
    } else if (n === "connection") {
      for (const t of v.split(",")) {
        const tok = t.trim().toLowerCase();
        if (tok === "close") connClose = true;
        else if (tok === "keep-alive") connKeepAlive = true;
        else if (removableToken(tok)) (connTokens ??= []).push(tok);
      }
    }
  }
  if (cl !== undefined && te !== undefined) throw new HttpParseError(400, "both Content-Length and Transfer-Encoding");
  let bodyKind: BodyKind = BODY_NONE;
  let contentLength = 0;
  if (te !== undefined) {
    if (te.toLowerCase() !== "chunked") throw new HttpParseError(400, "Transfer-Encoding other than chunked");
    if (head.versionMinor === 0) throw new HttpParseError(400, "Transfer-Encoding in an HTTP/1.0 request");
    bodyKind = BODY_CHUNKED;
  } else if (cl !== undefined) {
    contentLength = +cl;
    if (contentLength > 0) bodyKind = BODY_LENGTH;
  }
  const http10 = head.versionMinor === 0;
  if (host === undefined && !http10) throw new HttpParseError(400, "missing Host");
  let url = head.url;
  let hostOverride: string | undefined;
  const c0 = url.charCodeAt(0);
  if (c0 !== 47 /* / */) {
    if (url === "*" && head.method === "OPTIONS") {
      // asterisk-form: forwarded as is, routed as "/"
    } else {
      const m = ABSOLUTE.exec(url);
      if (m === null) throw new HttpParseError(400, "invalid request target");
      // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error ("http://a:80@evil/" names evil,
      // not a); it is never routed nor forwarded as Host
      if (m[2]!.includes("@")) throw new HttpParseError(400, "userinfo in the request target");
      hostOverride = m[2]!;
      url = m[3] || "/";
      if (url.charCodeAt(0) !== 47) url = "/" + url;
    }
  }
  let routePath = "/";
  if (url !== "*") {
    routePath = normalizeTarget(url);
    if (normalize) url = routePath;
  }
  const authority = hostOverride ?? host ?? "";
  return {
    method: head.method,
    url,
    routePath,
    host: hostOnly(authority),
    hostOverride,
    bodyKind,
    contentLength,
    expectContinue: expect,
    keepAlive: http10 ? connKeepAlive && !connClose : !connClose,
    upgrade: head.upgrade,
    http10,
    connectionTokens: connTokens,
  };
}

/**
 * The normal form of an origin-form request-target, as RFC 3986 §6.2.2 defines it for the path
 * (the query stays as sent): percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`)
 * decoded, the hex digits of every other escape upper-cased (`%2f` → `%2F`, never decoded: an
 * encoded slash is data, not a separator), then the dot segments `.` and `..` removed
 * (§5.2.4). A path that climbs above the root is refused with 400. Malformed escapes stay as
 * sent. A target with neither `%` nor `/.` is returned as is, without copying.
 */
export function normalizeTarget(url: string): string {
  if (!url.includes("%") && !url.includes("/.")) return url;
  const q = url.indexOf("?");
  let path = q === -1 ? url : url.slice(0, q);
  if (path.includes("%")) path = normalizePercent(path);
  if (path.includes("/.")) path = removeDotSegments(path);
  return q === -1 ? path : path + url.slice(q);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 32;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

function unreserved(c: number): boolean {
  const l = c | 32;
  return (l >= 97 && l <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/** §6.2.2.1-2: `%61` → `a`, `%2f` → `%2F`. */
function normalizePercent(path: string): string {
  let out = "";
  let from = 0;
  for (let i = path.indexOf("%"); i !== -1 && i + 2 < path.length; i = path.indexOf("%", i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) continue;
    const c = hi * 16 + lo;
    out += path.slice(from, i) + (unreserved(c) ? String.fromCharCode(c) : path.slice(i, i + 3).toUpperCase());
    from = i + 3;
    i += 2;
  }
  return from === 0 ? path : out + path.slice(from);
}

/** §5.2.4 on an absolute path; 400 when `..` would climb above the root. */
function removeDotSegments(path: string): string {
  const segs = path.split("/");
  const out: string[] = [];
  // segs[0] is "" (the path starts with "/")
  for (let i = 1; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    if (seg === ".") {
      if (last) out.push("");
    } else if (seg === "..") {
      if (out.length === 0) throw new HttpParseError(400, "path climbs above the root");
      out.pop();
      if (last) out.push("");
    } else out.push(seg);
  }
  return "/" + out.join("/");
}

/** `req.path`: the normalised path the route matched, without the query ("*" for asterisk-form). */
export function requestPath(f: RequestFacts): string {
  if (f.url === "*") return "*";
  const q = f.routePath.indexOf("?");
  return q === -1 ? f.routePath : f.routePath.slice(0, q);
}

/** "Example.com:8080" → "example.com"; "[::1]:80" → "::1". */
export function hostOnly(authority: string): string {
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const end = authority.indexOf("]");
    return (end === -1 ? authority.slice(1) : authority.slice(1, end)).toLowerCase();
  }
  const colon = authority.indexOf(":");
  return (colon === -1 ? authority : authority.slice(0, colon)).toLowerCase();
}

/**
 * A Connection token whose field is removed before forwarding. Never Host or the framing
 * fields: `Connection: content-length` would strip the body's length and desync the next hop
 * (a smuggling shape), `Connection: host` the Host. Upgrade is handled by the tunnel logic.
 */
function removableToken(tok: string): boolean {
  return tok !== "" && tok !== "upgrade" && tok !== "host" && tok !== "content-length" && tok !== "transfer-encoding";
}

/** The removable Connection tokens of a flat header list (interim and 101 responses). */
export function connectionTokensOf(h: string[]): string[] | undefined {
  let tokens: string[] | undefined;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.length !== 10 || h[i]!.toLowerCase() !== "connection") continue;
    for (const t of h[i + 1]!.split(",")) {
      const tok = t.trim().toLowerCase();
      if (tok !== "close" && tok !== "keep-alive" && removableToken(tok)) (tokens ??= []).push(tok);
    }
  }
  return tokens;
}

/** True for the hop-by-hop names we always drop (lower-case input not required). */
function hopByHop(name: string, upgrade: boolean): boolean {
  const len = name.length;
  if (len !== 10 && len !== 16 && len !== 17 && len !== 2 && len !== 7) return false;
  const n = name.toLowerCase();
  return (
    n === "connection" ||
    n === "keep-alive" ||
    n === "proxy-connection" ||
    n === "transfer-encoding" ||
    n === "te" ||
    (n === "upgrade" && !upgrade)
  );
}

function listed(name: string, tokens: string[] | undefined): boolean {
  return tokens !== undefined && tokens.includes(name.toLowerCase());
}

/**
 * The request head sent upstream: request line in HTTP/1.1, headers in order minus hop-by-hop,
 * Host replaced for absolute-form targets, chunked framing re-declared, `Connection: upgrade`
 * for upgrades, and `Expect` dropped when the proxy answers 100-continue itself.
 *
 * The names the client's Connection lists are dropped from the flat header list (the client's
 * own fields, untapped path) but not from [name, value] pairs: those are what `onRequest` taps
 * left, built by `pairsForTaps` without the listed names, so whatever a tap added (X-
 * Forwarded-For, Via, a route's `headers.set`) goes up even when a client lists its name
 * (CVE-2022-31813 class).
 */
export function serializeRequestHead(
  method: string,
  url: string,
  headers: Headers,
  f: {
    bodyKind: BodyKind;
    /** the body's length when bodyKind is BODY_LENGTH */
    contentLength: number;
    upgrade: boolean;
    hostOverride: string | undefined;
    connectionTokens: string[] | undefined;
    dropExpect: boolean;
    /** Host to add when the request has none (HTTP/1.0 clients) */
    fallbackHost: string | undefined;
  },
): string {
  let s = method + " " + url + " HTTP/1.1\r\n";
  let host = false;
  if (isPairs(headers)) {
    // the [name, value] pairs `onRequest` taps edited, written without a flat copy. The body is
    // the client's, framed by the proxy: a Content-Length a tap removed or changed would desync
    // the upstream, so the real one goes where the first was (or at the end)
    let length = f.bodyKind === BODY_CHUNKED;
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i]!;
      const name = pair[0];
      if (name.length === 4 && !host && name.toLowerCase() === "host") host = true;
      if (isContentLength(name)) {
        if (!length) s += name + ": " + (f.bodyKind === BODY_LENGTH ? f.contentLength : 0) + "\r\n";
        length = true;
        continue;
      }
      s += requestField(name, pair[1], f, undefined);
    }
    if (!length && f.bodyKind === BODY_LENGTH) s += "Content-Length: " + f.contentLength + "\r\n";
  } else {
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length === 4 && !host && name.toLowerCase() === "host") host = true;
      s += requestField(name, headers[i + 1]!, f, f.connectionTokens);
    }
  }
  const missing = f.hostOverride ?? f.fallbackHost;
  if (missing !== undefined && !host) s += "Host: " + missing + "\r\n";
  if (f.bodyKind === BODY_CHUNKED) s += "Transfer-Encoding: chunked\r\n";
  if (f.upgrade) s += "Connection: upgrade\r\n";
  return s + "\r\n";
}

/** One request header line as sent upstream ("" when it is dropped). */
function requestField(
  name: string,
  value: string,
  f: { upgrade: boolean; hostOverride: string | undefined; dropExpect: boolean },
  connectionTokens: string[] | undefined,
): string {
  if (hopByHop(name, f.upgrade)) return "";
  if (connectionTokens !== undefined && listed(name, connectionTokens)) return "";
  if (name.length === 4 && f.hostOverride !== undefined && name.toLowerCase() === "host") return name + ": " + f.hostOverride + "\r\n";
  if (f.dropExpect && name.length === 6 && name.toLowerCase() === "expect") return "";
  return name + ": " + value + "\r\n";
}

/** Headers as the parser gives them (flat name, value, …) or as taps edit them ([name, value] pairs). */
export type Headers = string[] | ReadonlyArray<readonly [string, string]>;

function isPairs(h: Headers): h is ReadonlyArray<readonly [string, string]> {
  return h.length > 0 && typeof h[0] !== "string";
}

/** "host:port" of a target, for a Host header (port omitted when it is the scheme's default). */
export function authorityOf(t: { host: string; port: number; tls?: unknown }): string {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return (t.tls ? t.port === 443 : t.port === 80) ? host : `${host}:${t.port}`;
}

/** Framing facts of an upstream response head. Throws HttpParseError(502) on bad framing. */
export interface ResponseFacts {
  bodyKind: BodyKind;
  contentLength: number;
  /** upstream allows reuse (keep-alive and self-delimited body) */
  reusable: boolean;
  connectionTokens: string[] | undefined;
  /**
   * the transfer codings other than chunked, in order, as sent ("gzip" for `gzip, chunked`):
   * the body's bytes carry them, so they go down with it (the proxy re-frames only chunked)
   */
  codings: string | undefined;
}

/** chunked as one coding of a list */
const CHUNKED_TOKEN = /(?:^|,)\s*chunked\s*(?:,|$)/i;

export function analyzeResponse(head: RawHead, requestMethod: string): ResponseFacts {
  const h = head.headers;
  let cl: string | undefined;
  let chunked = false;
  let te = false;
  let codings: string | undefined;
  let close = false;
  let keepAlive = false;
  let tokens: string[] | undefined;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!;
    const len = name.length;
    if (len !== 14 && len !== 17 && len !== 10) continue;
    const n = name.toLowerCase();
    const v = h[i + 1]!;
    if (n === "content-length") {
      if (!DIGITS.test(v) || (cl !== undefined && cl !== v)) throw new HttpParseError(502, "invalid Content-Length from upstream");
      cl = v;
    } else if (n === "transfer-encoding") {
      te = true;
      // repeated fields form one list (RFC 9110 §5.3); chunked counts only as the last coding
      for (const t of v.split(",")) {
        const coding = t.trim();
        if (coding === "") continue;
        if (chunked) codings = codings === undefined ? "chunked" : codings + ", chunked";
        chunked = coding.length === 7 && coding.toLowerCase() === "chunked";
        if (!chunked) codings = codings === undefined ? coding : codings + ", " + coding;
      }
    } else if (n === "connection") {
      for (const t of v.split(",")) {
        const tok = t.trim().toLowerCase();
        if (tok === "close") close = true;
        else if (tok === "keep-alive") keepAlive = true;
        else if (removableToken(tok)) (tokens ??= []).push(tok);
      }
    }
  }
  if (codings !== undefined && CHUNKED_TOKEN.test(codings)) {
    // chunked applied before another coding (or twice): re-framing would apply it twice
    throw new HttpParseError(502, "chunked transfer coding from upstream that is not the last");
  }
  const status = head.statusCode;
  let bodyKind: BodyKind;
  let contentLength = 0;
  if (requestMethod === "HEAD" || bodilessStatus(status)) {
    bodyKind = BODY_NONE;
    contentLength = cl !== undefined ? +cl : 0;
  } else if (te) bodyKind = chunked ? BODY_CHUNKED : BODY_CLOSE;
  else if (cl !== undefined) {
    contentLength = +cl;
    bodyKind = contentLength > 0 ? BODY_LENGTH : BODY_NONE;
  } else bodyKind = BODY_CLOSE;
  const persistent = head.versionMinor === 0 ? keepAlive && !close : !close;
  return {
    bodyKind,
    contentLength,
    reusable: persistent && bodyKind !== BODY_CLOSE && !(te && cl !== undefined),
    connectionTokens: tokens,
    codings,
  };
}

/**
 * The response head sent downstream. `framing`: BODY_LENGTH keeps Content-Length, BODY_CHUNKED
 * declares the body's codings then chunked, BODY_CLOSE declares its codings only (the close
 * ends the body; RFC 9112 §6.1 allows no other framing after a coding that is not chunked), BODY_NONE keeps
 * Content-Length for HEAD/304 as the upstream sent it. As for requests, `connectionTokens`
 * apply to the upstream's flat list, not to pairs `onUpstreamResponse` taps returned (built by
 * `pairsForTaps` without those names): an upstream's Connection cannot remove what taps add.
 */
export function serializeResponseHead(
  status: number,
  message: string | undefined,
  headers: Headers,
  f: {
    framing: BodyKind;
    close: boolean;
    keepAliveHeader: boolean;
    upgrade: boolean;
    connectionTokens: string[] | undefined;
    keepLength: boolean;
    /** with BODY_LENGTH framing: the body's real length, written whatever taps left */
    contentLength?: number;
    /**
     * with BODY_CHUNKED or BODY_CLOSE framing: the body's transfer codings other than chunked
     * (`ResponseFacts.codings`), declared before the proxy's own chunked (or alone, when the
     * close ends the body)
     */
    codings?: string | undefined;
  },
): string {
  let s = "HTTP/1.1 " + status + " " + (message || statusText(status)) + "\r\n";
  // analyzeResponse accepts repeated identical Content-Lengths; they go down as one (RFC 9110
  // §8.6), as clients such as llhttp reject a repeated Content-Length
  let lengths = 0;
  if (isPairs(headers)) {
    // edited by `onUpstreamResponse` taps: the body is the upstream's, so is its length (a
    // changed or removed Content-Length would desync the client)
    const real = f.framing === BODY_LENGTH && f.keepLength ? f.contentLength : undefined;
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i]!;
      let line = responseField(pair[0], pair[1], f, undefined);
      if (line !== "" && isContentLength(pair[0])) {
        if (lengths++ > 0) continue;
        if (real !== undefined) line = pair[0] + ": " + real + "\r\n";
      }
      s += line;
    }
    if (real !== undefined && lengths === 0) s += "Content-Length: " + real + "\r\n";
  } else {
    for (let i = 0; i < headers.length; i += 2) {
      const line = responseField(headers[i]!, headers[i + 1]!, f, f.connectionTokens);
      if (line !== "" && isContentLength(headers[i]!) && lengths++ > 0) continue;
      s += line;
    }
  }
  if (f.framing === BODY_CHUNKED) s += f.codings === undefined ? "Transfer-Encoding: chunked\r\n" : "Transfer-Encoding: " + f.codings + ", chunked\r\n";
  else if (f.framing === BODY_CLOSE && f.codings !== undefined) s += "Transfer-Encoding: " + f.codings + "\r\n";
  if (f.upgrade) s += "Connection: upgrade\r\n";
  else if (f.close) s += "Connection: close\r\n";
  else if (f.keepAliveHeader) s += "Connection: keep-alive\r\n";
  return s + "\r\n";
}

function isContentLength(name: string): boolean {
  return name.length === 14 && name.toLowerCase() === "content-length";
}

/** One response header line as sent downstream ("" when it is dropped). */
function responseField(name: string, value: string, f: { upgrade: boolean; keepLength: boolean }, connectionTokens: string[] | undefined): string {
  if (hopByHop(name, f.upgrade)) return "";
  if (connectionTokens !== undefined && listed(name, connectionTokens)) return "";
  if (!f.keepLength && isContentLength(name)) return "";
  return name + ": " + value + "\r\n";
}

/** Trailer section of a chunked body ("0\r\n" + trailers + "\r\n"). */
export function lastChunk(trailers: string[] | undefined): string {
  if (trailers === undefined || trailers.length === 0) return "0\r\n\r\n";
  let s = "0\r\n";
  for (let i = 0; i < trailers.length; i += 2) s += trailers[i]! + ": " + trailers[i + 1]! + "\r\n";
  return s + "\r\n";
}

/**
 * A message's headers as taps get them (`onRequest`, `onUpstreamResponse`): pairs, minus the
 * fields its Connection header lists (`connectionTokens`). Those are the sender's hop-by-hop
 * fields, removed here, before taps run, and never from what the taps return.
 */
export function pairsForTaps(flat: string[], connectionTokens: string[] | undefined): Array<[string, string]> {
  if (connectionTokens === undefined) return toPairs(flat);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) if (!listed(flat[i]!, connectionTokens)) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

/** Flat pairs ↔ HeaderPairs (for hooks only; the fast path stays flat). */
export function toPairs(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

export function toFlat(pairs: ReadonlyArray<readonly [string, string]>): string[] {
  const out: string[] = [];
  for (const [k, v] of pairs) out.push(k, v);
  return out;
}
