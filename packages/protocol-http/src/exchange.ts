/**
 * One request/response exchange: routing, an upstream socket from the pool, the request head
 * and body forwarded as slices, the response relayed with the framing the client needs, and
 * every failure mapped to a status (or an aborted client connection once bytes went down).
 * With no hook tapped it runs without promises; hook work lives in exchange-hooks.ts.
 */
import { Readable } from "node:stream";
import {
  dial,
  PluginError,
  RouteNotFoundError,
  UpstreamResetError,
  UpstreamTimeoutError,
  relay,
  type Connection,
  type DirectResponse,
  type Route,
  type RouteKey,
  type RouteMatchResult,
  type Target,
} from "@switchyard/core";
import type { Socket } from "node:net";
import { errorResponse, HttpParseError, HttpStatusError, statusForError } from "./errors-response.js";
import { runErrorHook, runRequestHook, runResponseHook } from "./exchange-hooks.js";
import {
  analyzeResponse,
  authorityOf,
  BODY_CHUNKED,
  BODY_CLOSE,
  BODY_LENGTH,
  BODY_NONE,
  lastChunk,
  serializeRequestHead,
  serializeResponseHead,
  toFlat,
  type RequestFacts,
  type ResponseFacts,
} from "./head.js";
import { Framer, type FramerHandler, type RawHead } from "./internal/parser.js";
import type { HttpRequest } from "./message.js";
import { resolveRouteOptions, type ResolvedRouteOptions } from "./options.js";
import type { PooledSocket, PoolWaiter, SocketOwner } from "./pool.js";
import type { ProtocolRuntime } from "./runtime.js";
import { T_BODY, T_UPSTREAM_HEADERS, type Session } from "./session.js";
import { rewriteUrl } from "./url.js";

export const T_REQUEST = 5;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
const QUEUE_HIGH_WATER = 64 * 1024;
const CRLF = "\r\n";

/** Per upstream socket: its response framer, dispatching to the exchange that owns it. */
class UpstreamState implements FramerHandler {
  readonly framer: Framer;
  ex: Exchange | undefined;
  constructor() {
    this.framer = new Framer("response", this, { maxHeaderSize: 64 * 1024, maxHeaderCount: 512, maxUrlLength: 0, strict: false });
  }
  onHead(head: RawHead): boolean {
    return this.ex!.onResponseHead(head);
  }
  onBody(chunk: Buffer): void {
    this.ex!.onResponseBody(chunk);
  }
  onTrailers(trailers: string[]): void {
    this.ex!.resTrailers = trailers;
  }
  onComplete(): void {
    this.ex!.onResponseComplete();
  }
}

export class Exchange implements PoolWaiter, SocketOwner {
  readonly session: Session;
  readonly conn: Connection;
  readonly runtime: ProtocolRuntime;
  readonly head: RawHead;
  readonly facts: RequestFacts;
  readonly seq: number;
  method: string;
  route: Route | undefined;
  ropts: ResolvedRouteOptions | undefined;
  target: Target | undefined;
  tried: Set<Target> | undefined;
  ps: PooledSocket | undefined;
  up: UpstreamState | undefined;
  attempt = 1;
  reused = false;
  staleRetried = false;
  forceFresh = false;
  // request side
  requestComplete = false;
  bodyBytes = 0;
  queue: Buffer[] | undefined;
  queuedBytes = 0;
  reqTrailers: string[] | undefined;
  headStr = "";
  sent = false;
  upstreamDone = false;
  discardBody = false;
  clientPaused = false;
  bodyStream: Readable | undefined;
  buffered: Buffer | undefined;
  msg: HttpRequest | undefined;
  answered100 = false;
  // response side
  resHeadSeen = false;
  interim = false;
  rf: ResponseFacts | undefined;
  resHead: RawHead | undefined;
  resTrailers: string[] | undefined;
  /** any byte (1xx included) went downstream: no more retries */
  downStarted = false;
  /** the final response head went downstream */
  headWritten = false;
  downChunked = false;
  closeAfter = false;
  upDone = false;
  downDone = false;
  upstreamPaused = false;
  /** the response goes through onUpstreamResponse taps (they decide when it goes down) */
  hooked = false;
  /** body chunks held while taps run, unless a tap opened `body` (then resStream) */
  resHold: Buffer[] | undefined;
  resHoldBytes = 0;
  resStream: Readable | undefined;
  upgrading = false;
  aborted = false;
  finished = false;
  retryTimer: NodeJS.Timeout | undefined;
  requestTimer: NodeJS.Timeout | undefined;

  constructor(session: Session, head: RawHead, facts: RequestFacts) {
    this.session = session;
    this.conn = session.conn;
    this.runtime = session.runtime;
    this.head = head;
    this.facts = facts;
    this.method = facts.method;
    this.seq = session.requests;
  }

  get id(): string {
    return `${this.conn.id}.${this.seq}`;
  }

  get replayable(): boolean {
    return this.facts.bodyKind === BODY_NONE || this.buffered !== undefined;
  }

  // ---- routing ------------------------------------------------------------------------------

  start(): void {
    const f = this.facts;
    const conn = this.conn;
    const key: RouteKey = {
      listener: conn.listener.name,
      protocol: "http",
      clientIp: conn.info.clientIp,
      host: f.host,
      path: f.routePath,
      method: f.method,
    };
    if (conn.info.servername !== undefined) key.sni = conn.info.servername;
    const m = this.runtime.resolveSync(conn, key);
    if (m === null) {
      this.runtime.proxy.resolve(conn, key).then(
        (r) => this.routed(r),
        (err: unknown) => this.routeFailed(err),
      );
    } else if (m === undefined) this.routeFailed(new RouteNotFoundError(`no route for ${f.host}${f.routePath}`));
    else this.routed(m);
  }

  routeFailed(err: unknown): void {
    if (this.aborted) return;
    let status = statusForError(err);
    if (err instanceof PluginError) return this.hookFailed(err, 500);
    if (status === 404) {
      const hosts = this.session.opts.hosts;
      const sni = this.conn.info.servername;
      const misdirected = (sni !== undefined && sni.toLowerCase() !== this.facts.host) || (hosts !== undefined && !hosts.some((h) => h.test(this.facts.host)));
      if (misdirected) status = 421;
    }
    this.respondError(status, err);
  }

  routed(m: RouteMatchResult): void {
    if (this.aborted) return;
    const route = m.route;
    this.route = route;
    const o = resolveRouteOptions(route, this.session.opts);
    this.ropts = o;
    const f = this.facts;
    if (o.maxBodySize > 0 && (f.contentLength > o.maxBodySize || this.bodyBytes > o.maxBodySize)) {
      return this.respondError(413, new HttpStatusError(413, "PRX_ERR_HTTP_BODY_TOO_LARGE", "request body too large"));
    }
    if (!this.requestComplete) this.session.deadline.set(o.bodyTimeout, T_BODY);
    if (o.requestTimeout > 0) this.requestTimer = setTimeout(() => this.onTimeout(T_REQUEST), o.requestTimeout);
    const url = o.stripPrefix === false && o.rewrite === undefined ? f.url : rewriteUrl(f.url, m, o.stripPrefix, o.rewrite);
    if (f.expectContinue && o.expectContinue === "answer" && !this.requestComplete && !f.http10) {
      this.answered100 = true;
      this.session.socket.write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (this.runtime.proxy.hooks.onRequest.isUsed()) return runRequestHook(this, m, url);
    const target = route.balancer.pick();
    this.target = target;
    this.headStr = serializeRequestHead(f.method, url, this.head.headers, {
      bodyKind: f.bodyKind,
      upgrade: f.upgrade,
      hostOverride: f.hostOverride,
      connectionTokens: f.connectionTokens,
      dropExpect: this.answered100,
      fallbackHost: f.http10 && target !== undefined ? authorityOf(target) : undefined,
    });
    this.connect();
  }

  // ---- upstream socket ----------------------------------------------------------------------

  connect(): void {
    if (this.aborted) return;
    const target = this.target;
    if (target === undefined) {
      return this.respondError(503, new HttpStatusError(503, "PRX_ERR_HTTP_NO_TARGET", "route has no available target"));
    }
    this.conn.target = target;
    const pool = this.runtime.pools.get(target, this.ropts!.pool);
    let ps: PooledSocket | undefined;
    try {
      ps = pool.acquire(this, this.forceFresh);
    } catch (err) {
      return this.upstreamFailed(err as Error, false);
    }
    if (ps !== undefined) this.poolReady(ps, false);
  }

  dialNew(): Promise<Socket> {
    const target = this.target!;
    if (this.route!.dynamic) return this.runtime.proxy.dial(this.conn, target, true);
    return dial(target, { timeoutMs: this.ropts!.connectTimeout });
  }

  poolReady(ps: PooledSocket, fresh: boolean): void {
    if (this.aborted || this.finished) {
      ps.pool.release(ps, !this.runtime.proxy.closing);
      return;
    }
    this.ps = ps;
    this.reused = !fresh;
    ps.owner = this;
    let up = ps.state as UpstreamState | undefined;
    if (up === undefined) {
      up = new UpstreamState();
      ps.state = up;
    }
    up.ex = this;
    this.up = up;
    up.framer.expect(this.method);
    this.sendRequest();
  }

  poolFailed(err: Error): void {
    if (this.aborted || this.finished) return;
    this.upstreamFailed(err, false);
  }

  sendRequest(): void {
    const sock = this.ps!.socket;
    sock.cork();
    sock.write(this.headStr, "latin1");
    this.sent = true;
    if (this.buffered !== undefined) {
      if (this.buffered.length > 0) this.writeUpstreamBody(this.buffered);
      this.finishUpstreamRequest();
    } else if (this.bodyStream !== undefined) {
      streamToUpstream(this, this.bodyStream);
    } else {
      const q = this.queue;
      if (q !== undefined) {
        this.queue = undefined;
        this.queuedBytes = 0;
        for (let i = 0; i < q.length; i++) this.writeUpstreamBody(q[i]!);
        if (!this.clientPaused) this.session.resumeClient();
      }
      if (this.requestComplete) this.finishUpstreamRequest();
    }
    sock.uncork();
  }

  writeUpstreamBody(chunk: Buffer): boolean {
    const sock = this.ps!.socket;
    if (this.facts.bodyKind === BODY_CHUNKED) {
      sock.write(chunk.length.toString(16) + CRLF, "latin1");
      sock.write(chunk);
      return sock.write(CRLF, "latin1");
    }
    return sock.write(chunk);
  }

  finishUpstreamRequest(): void {
    if (this.upstreamDone) return;
    if (this.facts.bodyKind === BODY_CHUNKED) this.ps!.socket.write(lastChunk(this.reqTrailers), "latin1");
    this.upstreamDone = true;
    if (!this.resHeadSeen) this.session.deadline.set(this.ropts!.upstreamHeadersTimeout, T_UPSTREAM_HEADERS);
  }

  // ---- request body from the client ---------------------------------------------------------

  requestBody(chunk: Buffer): void {
    if (this.aborted) return;
    this.bodyBytes += chunk.length;
    const o = this.ropts;
    if (o !== undefined && o.maxBodySize > 0 && this.bodyBytes > o.maxBodySize) return this.tooLarge();
    this.session.deadline.set((o ?? this.session.opts).bodyTimeout, T_BODY);
    if (this.discardBody) return;
    if (this.bodyStream !== undefined) {
      if (!this.bodyStream.push(chunk)) this.session.pauseClient();
      return;
    }
    if (this.sent && this.ps !== undefined) {
      if (!this.writeUpstreamBody(chunk)) {
        this.clientPaused = true;
        this.session.pauseClient();
      }
      return;
    }
    (this.queue ??= []).push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > QUEUE_HIGH_WATER) this.session.pauseClient();
  }

  requestTrailers(trailers: string[]): void {
    this.reqTrailers = trailers;
  }

  requestEnd(): void {
    this.requestComplete = true;
    if (this.aborted) return;
    if (this.bodyStream !== undefined) this.bodyStream.push(null);
    else if (this.sent && this.ps !== undefined && !this.discardBody) this.finishUpstreamRequest();
    else if (!this.resHeadSeen) this.session.deadline.clear();
    this.maybeFinish();
  }

  onUpstreamDrain(): void {
    if (this.clientPaused) {
      this.clientPaused = false;
      this.session.resumeClient();
    }
    if (this.bodyStream !== undefined && this.bodyStream.isPaused()) this.bodyStream.resume();
  }

  // ---- response from the upstream ----------------------------------------------------------

  onUpstreamData(chunk: Buffer): void {
    const up = this.up!;
    const client = this.session.socket;
    client.cork();
    const n = up.framer.execute(chunk);
    client.uncork();
    if (n < 0) return this.upstreamFailed(up.framer.error!, true);
    if (this.ps === undefined) return;
    if (this.upgrading) return this.startTunnel(chunk.subarray(n));
    if (this.upDone) {
      this.releaseUpstream(n === chunk.length);
      this.maybeFinish();
    }
  }

  onResponseHead(h: RawHead): boolean {
    const status = h.statusCode;
    if (status < 200) {
      if (status === 101) {
        if (!this.facts.upgrade) throw new HttpParseError(502, "101 for a request that did not ask to upgrade");
        this.upgrading = true;
        this.resHead = h;
        this.up!.framer.stop = true;
        return true;
      }
      this.interim = true;
      const relay100 = status !== 100 || (this.facts.expectContinue && !this.answered100);
      if (!this.facts.http10 && relay100 && !this.headWritten) {
        this.downStarted = true;
        this.session.socket.write(
          serializeResponseHead(status, h.statusMessage, h.headers, { framing: BODY_NONE, close: false, keepAliveHeader: false, upgrade: false, connectionTokens: undefined, keepLength: false }),
          "latin1",
        );
      }
      return true;
    }
    const rf = analyzeResponse(h, this.method);
    this.rf = rf;
    this.resHead = h;
    this.resHeadSeen = true;
    this.session.deadline.set(this.ropts!.bodyTimeout, T_BODY);
    if (this.runtime.proxy.hooks.onUpstreamResponse.isUsed()) {
      runResponseHook(this, h, rf);
      return rf.bodyKind === BODY_NONE;
    }
    this.writeResponseHead(status, h.statusMessage, h.headers, rf, "");
    return rf.bodyKind === BODY_NONE;
  }

  writeResponseHead(status: number, message: string | undefined, headers: string[], rf: ResponseFacts, extra: string): void {
    const f = this.facts;
    const bodyPending = !this.requestComplete && f.bodyKind !== BODY_NONE;
    let close = !this.session.keepAlive || bodyPending;
    let framing = rf.bodyKind;
    if (framing === BODY_CHUNKED || framing === BODY_CLOSE) {
      if (f.http10) {
        framing = BODY_CLOSE;
        close = true;
      } else framing = BODY_CHUNKED;
    }
    this.downChunked = framing === BODY_CHUNKED;
    this.closeAfter = close;
    if (bodyPending) {
      // an early response: the rest of the request body is dropped and the connection closes
      this.discardBody = true;
      this.session.closing = true;
    }
    this.downStarted = true;
    this.headWritten = true;
    let s = serializeResponseHead(status, message, headers, {
      framing,
      close,
      keepAliveHeader: f.http10 && !close,
      upgrade: false,
      connectionTokens: rf.connectionTokens,
      keepLength: framing === BODY_LENGTH || framing === BODY_NONE,
    });
    if (extra !== "") s = s.slice(0, -2) + extra + CRLF;
    this.session.socket.write(s, "latin1");
  }

  onResponseBody(chunk: Buffer): void {
    this.session.deadline.set(this.ropts!.bodyTimeout, T_BODY);
    const hold = this.resHold;
    if (hold !== undefined) {
      hold.push(chunk);
      this.resHoldBytes += chunk.length;
      if (this.resHoldBytes > QUEUE_HIGH_WATER) this.pauseUpstream();
      return;
    }
    const rs = this.resStream;
    if (rs !== undefined) {
      if (!rs.push(chunk)) this.pauseUpstream();
      return;
    }
    if (!this.writeDown(chunk)) this.pauseUpstream();
  }

  writeDown(chunk: Buffer): boolean {
    const client = this.session.socket;
    if (this.downChunked) {
      client.write(chunk.length.toString(16) + CRLF, "latin1");
      client.write(chunk);
      return client.write(CRLF, "latin1");
    }
    return client.write(chunk);
  }

  pauseUpstream(): void {
    if (this.ps !== undefined && !this.upstreamPaused) {
      this.upstreamPaused = true;
      this.ps.socket.pause();
    }
  }

  onClientDrain(): void {
    if (this.upstreamPaused) {
      this.upstreamPaused = false;
      this.ps?.socket.resume();
    }
    if (this.resStream && this.resStream.isPaused()) this.resStream.resume();
  }

  onResponseComplete(): void {
    if (this.interim) {
      this.interim = false;
      return;
    }
    if (this.upgrading) return;
    this.upDone = true;
    this.up!.framer.stop = true;
    if (this.hooked) {
      this.resStream?.push(null);
      return;
    }
    this.endDown();
  }

  endDown(): void {
    if (this.downDone) return;
    if (this.downChunked) this.session.socket.write(lastChunk(this.resTrailers), "latin1");
    this.downDone = true;
  }

  onUpstreamEnd(): void {
    const up = this.up;
    if (up !== undefined && up.framer.closeDelimited) {
      const client = this.session.socket;
      client.cork();
      up.framer.finish();
      client.uncork();
      this.releaseUpstream(false);
      return this.maybeFinish();
    }
    this.upstreamLost();
  }

  onUpstreamClose(): void {
    this.upstreamLost();
  }

  /** The upstream socket ended or failed in the middle of this exchange. */
  upstreamLost(): void {
    this.dropUpstream();
    if (this.aborted || this.finished) return;
    if (!this.resHeadSeen && !this.upgrading) {
      if (this.reused && !this.staleRetried && !this.downStarted && this.replayable && IDEMPOTENT.has(this.method)) {
        // a stale keep-alive socket: resend once on a fresh connection
        this.staleRetried = true;
        this.forceFresh = true;
        return this.retry(0, false);
      }
      return this.upstreamFailed(new UpstreamResetError("upstream closed the connection before responding"), true);
    }
    if (this.upDone) return this.maybeFinish();
    this.resStream?.destroy(new UpstreamResetError("upstream closed mid-response"));
    if (!this.headWritten) return this.respondError(502, new UpstreamResetError("upstream closed mid-response"));
    this.runtime.proxy.logger.info("upstream closed mid-response", { id: this.id });
    this.conn.destroy("upstream-closed");
  }

  releaseUpstream(clean: boolean): void {
    const ps = this.ps;
    if (ps === undefined) return;
    this.ps = undefined;
    if (this.up !== undefined) this.up.ex = undefined;
    this.up = undefined;
    if (this.upstreamPaused) {
      this.upstreamPaused = false;
      ps.socket.resume();
    }
    const reusable = clean && this.rf !== undefined && this.rf.reusable && this.upstreamDone && !this.aborted && !this.runtime.proxy.closing;
    ps.pool.release(ps, reusable);
  }

  /** Closes the current upstream socket without reuse. */
  dropUpstream(): void {
    const ps = this.ps;
    if (ps === undefined) return;
    this.ps = undefined;
    if (this.up !== undefined) {
      this.up.ex = undefined;
      this.up.framer.reset();
    }
    this.up = undefined;
    ps.pool.discard(ps);
  }

  // ---- failures and answers -----------------------------------------------------------------

  upstreamFailed(err: Error, requestSent: boolean): void {
    if (this.aborted || this.finished) return;
    this.dropUpstream();
    const proxy = this.runtime.proxy;
    if (this.target !== undefined && proxy.events.listenerCount("upstreamError") > 0) {
      proxy.events.emit("upstreamError", { connection: this.conn.info, target: this.target, error: err as HttpStatusError });
    }
    if (proxy.hooks.onUpstreamResponse.isUsed() && !(err instanceof PluginError)) return runErrorHook(this, err, requestSent);
    if (this.headWritten) return this.conn.destroy("upstream-error", err);
    this.respondError(statusForError(err), err);
  }

  hookFailed(err: unknown, status: number): void {
    const proxy = this.runtime.proxy;
    if (err instanceof PluginError) {
      proxy.logger.error("plugin failed", { id: this.id, hook: err.hook, plugin: err.plugin, error: err.message });
      proxy.events.emit("pluginError", err);
    } else proxy.logger.error("hook failed", { id: this.id, error: (err as Error)?.message ?? String(err) });
    if (this.headWritten) return this.conn.destroy("plugin-error", err);
    this.respondError(status, err);
  }

  /** Answers with a short plain-text error; aborts the client connection if a head went down. */
  respondError(status: number, err: unknown): void {
    if (this.aborted || this.finished) return;
    this.dropUpstream();
    if (this.headWritten) return this.conn.destroy("upstream-error", err);
    const detail = status < 500 && err instanceof Error ? err.message : undefined;
    this.runtime.proxy.logger.info("request failed", { id: this.id, status, error: (err as Error)?.message ?? String(err) });
    const bodyPending = !this.requestComplete && this.facts.bodyKind !== BODY_NONE;
    const close = bodyPending || status === 413 || !this.session.keepAlive;
    if (bodyPending) {
      this.discardBody = true;
      this.session.closing = true;
    }
    this.bodyStream?.resume();
    this.headWritten = true;
    this.downStarted = true;
    this.closeAfter = close;
    this.session.socket.write(errorResponse(status, this.id, close, detail));
    this.downDone = true;
    this.maybeFinish();
  }

  /** A tap answered directly. */
  respondDirect(r: DirectResponse): void {
    const body = r.body === undefined ? Buffer.alloc(0) : typeof r.body === "string" ? Buffer.from(r.body) : r.body;
    const headers = toFlat(r.headers ?? []).filter((_, i, a) => i % 2 === 1 ? !/^content-length$/i.test(a[i - 1]!) : !/^content-length$/i.test(a[i]!));
    this.discardBody = true;
    this.bodyStream?.resume();
    this.writeResponseHead(r.status, undefined, headers, { bodyKind: BODY_LENGTH, contentLength: body.length, reusable: false, connectionTokens: undefined }, `Content-Length: ${body.length}\r\n`);
    if (this.method !== "HEAD" && body.length > 0) this.session.socket.write(body);
    this.downDone = true;
    this.maybeFinish();
  }

  retry(delayMs: number, otherTarget: boolean): void {
    this.attempt++;
    this.resHeadSeen = false;
    this.interim = false;
    this.rf = undefined;
    this.resHead = undefined;
    this.resTrailers = undefined;
    this.resStream = undefined;
    this.resHold = undefined;
    this.resHoldBytes = 0;
    this.hooked = false;
    this.upDone = false;
    this.sent = false;
    this.upstreamDone = false;
    this.upgrading = false;
    if (otherTarget && this.target !== undefined && this.route !== undefined) {
      (this.tried ??= new Set()).add(this.target);
      this.target = this.route.balancer.pick(this.tried) ?? this.route.balancer.pick();
    }
    if (delayMs > 0) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.connect();
      }, delayMs);
    } else this.connect();
  }

  tooLarge(): void {
    if (this.headWritten) return this.conn.destroy("protocol-error");
    this.respondError(413, new HttpStatusError(413, "PRX_ERR_HTTP_BODY_TOO_LARGE", "request body too large"));
  }

  /** The client sent a bad body, or closed before the request was complete. */
  clientFailed(err: HttpParseError | undefined): void {
    if (err === undefined || this.headWritten) return this.conn.destroy(err ? "protocol-error" : "client-closed", err);
    this.respondError(err.status, err);
  }

  onTimeout(kind: number): void {
    if (this.aborted || this.finished) return;
    if (kind === T_UPSTREAM_HEADERS) {
      if (this.resHeadSeen) return;
      return this.upstreamFailed(new UpstreamTimeoutError("headers", "upstream response head timed out"), true);
    }
    if (this.headWritten) return this.conn.destroy("idle-timeout");
    if (kind === T_BODY && !this.requestComplete) return this.respondError(408, new HttpStatusError(408, "PRX_ERR_HTTP_BODY_TIMEOUT", "request body timed out"));
    this.upstreamFailed(new UpstreamTimeoutError(kind === T_REQUEST ? "request" : "body"), true);
  }

  maybeFinish(): void {
    if (this.finished || !this.downDone) return;
    if (!this.requestComplete && !this.closeAfter) return;
    this.finished = true;
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    if (this.ps !== undefined && this.upDone) this.releaseUpstream(true);
    else this.dropUpstream();
    this.session.exchangeDone(this, !this.closeAfter);
  }

  /** The client went away: cancel everything this exchange holds. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    if (this.target !== undefined && this.ropts !== undefined) this.runtime.pools.get(this.target, this.ropts.pool).cancel(this);
    this.dropUpstream();
    this.bodyStream?.destroy();
    this.resStream?.destroy();
  }

  startTunnel(rest: Buffer): void {
    const ps = this.ps!;
    const h = this.resHead!;
    this.ps = undefined;
    this.up!.ex = undefined;
    this.up = undefined;
    this.finished = true;
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    const upstream = ps.pool.detach(ps);
    const client = this.session.socket;
    client.write(
      serializeResponseHead(101, h.statusMessage, h.headers, { framing: BODY_NONE, close: false, keepAliveHeader: false, upgrade: true, connectionTokens: undefined, keepLength: true }),
      "latin1",
    );
    const pending = this.session.detachForTunnel();
    if (rest.length > 0) client.write(rest);
    upstream.resume();
    relay(this.conn, upstream, {
      idleMs: this.runtime.proxy.timeoutsFor(this.conn).idle,
      head: pending === undefined ? undefined : [pending],
      clientEnded: this.session.clientEnded,
    });
  }
}

/** Streams a (hooked) request body to the upstream with backpressure. */
function streamToUpstream(ex: Exchange, body: Readable): void {
  body.on("data", (c: Buffer) => {
    if (ex.ps === undefined || ex.discardBody) return;
    if (!ex.writeUpstreamBody(c)) body.pause();
  });
  body.once("end", () => {
    if (ex.ps !== undefined && !ex.discardBody) ex.finishUpstreamRequest();
  });
  body.resume();
}
