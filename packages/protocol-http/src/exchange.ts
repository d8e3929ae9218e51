/**
 * One request/response exchange: routing, an upstream socket from the pool, the request head
 * and body forwarded as slices, the response relayed with the framing the client needs, and
 * every failure mapped to a status (or an aborted client connection once bytes went down).
 * With no hook tapped it runs without promises. This file holds the state and routing; the
 * request side, the upstream socket, the response side, failures and hook work live in the
 * exchange-*.ts files next to it.
 */
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import {
  PluginError,
  type Connection,
  type DirectResponse,
  type HttpRequestMessage,
  type Route,
  type RouteKey,
  type RouteMatchResult,
  type Target,
} from "@switchyard/core";
import { statusForError, type HttpParseError } from "./errors-response.js";
import * as failures from "./exchange-failures.js";
import { openResponseStream } from "./exchange-hooks.js";
import * as request from "./exchange-request.js";
import * as response from "./exchange-response.js";
import * as upstream from "./exchange-upstream.js";
import type { UpstreamState } from "./exchange-upstream.js";
import {
  BODY_CHUNKED,
  BODY_NONE,
  lastChunk,
  type RequestFacts,
  type BodyKind,
  type ResponseFacts,
  type Headers,
} from "./head.js";
import type { RawHead } from "./internal/parser.js";
import { T_UPSTREAM_HEADERS } from "./internal/phases.js";
import type { HttpRequest } from "./message.js";
import type { ResolvedRouteOptions } from "./options.js";
import { ownBytes, type PooledSocket, type PoolWaiter, type SocketOwner } from "./pool.js";
import type { ResponseSink } from "./response-drain.js";
import type { ProtocolRuntime } from "./runtime.js";
import type { Session } from "./session.js";


export class Exchange implements PoolWaiter, SocketOwner, ResponseSink {
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
  /** what the onRequest taps returned (the head is rebuilt from it when a retry changes target) */
  reqOut: HttpRequestMessage | undefined;
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
  /** body bytes read while hooked, held or pushed to a tap's stream (what a drain has spent) */
  resHookedBytes = 0;
  upgrading = false;
  aborted = false;
  finished = false;
  retryTimer: NodeJS.Timeout | undefined;
  /** requestTimeout fired: the request's total deadline is over, no attempt may follow */
  deadlinePassed = false;
  requestTimer: NodeJS.Timeout | undefined;
  /** expectContinueTimeout: the proxy's own 100 Continue if the upstream sends none */
  continueTimer: NodeJS.Timeout | undefined;

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
      // conn.info (an object per connection) only when TLS: plain connections never need it
      clientIp: conn.clientIp,
      host: f.host,
      path: f.routePath,
      method: f.method,
    };
    const sni = conn.socket !== conn.rawSocket ? conn.info.servername : undefined;
    if (sni !== undefined) key.sni = sni;
    const proxy = this.runtime.proxy;
    let m: RouteMatchResult | undefined;
    try {
      // synchronous when only the route table answers onResolve (core counts route stats)
      m = proxy.tryResolveSync(conn, key);
    } catch (err) {
      return this.routeFailed(err);
    }
    if (m !== undefined) return this.routed(m);
    proxy
      .resolve(conn, key)
      .then(
        (r) => this.routed(r),
        (err: unknown) => this.routeFailed(err),
      )
      .catch((err: unknown) => this.crashed(err));
  }

  /**
   * A handler on an asynchronous path threw (a bug, or a plugin's malformed route): this request
   * fails — 500 if nothing went down yet, else the connection is cut — and the process goes on.
   */
  crashed(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.runtime.proxy.logger.error("http exchange failed", { id: this.id, error: error.stack ?? error.message });
    if (this.aborted || this.finished) return;
    try {
      if (!this.headWritten) return this.respondError(500, error);
    } catch {
      // fall through: cut the connection
    }
    this.conn.destroy("protocol-error", error);
  }

  routeFailed(err: unknown): void {
    if (this.aborted) return;
    let status = statusForError(err);
    if (err instanceof PluginError) return this.hookFailed(err, 500);
    if (status === 404) {
      const hosts = this.session.opts.hosts;
      const sni = this.conn.socket !== this.conn.rawSocket ? this.conn.info.servername : undefined;
      const misdirected = (sni !== undefined && sni.toLowerCase() !== this.facts.host) || (hosts !== undefined && !hosts.some((h) => h.test(this.facts.host)));
      if (misdirected) status = 421;
    }
    this.respondError(status, err);
  }

  routed(m: RouteMatchResult): void {
    request.routed(this, m);
  }

  // ---- upstream socket ----------------------------------------------------------------------

  connect(): void {
    upstream.connect(this);
  }

  dialNew(): Promise<Socket> {
    return upstream.dialNew(this);
  }

  poolReady(ps: PooledSocket, fresh: boolean): void {
    upstream.poolReady(this, ps, fresh);
  }

  poolFailed(err: Error): void {
    if (this.aborted || this.finished) return;
    this.upstreamFailed(err, false);
  }

  sendRequest(): void {
    request.sendRequest(this);
  }

  writeUpstreamBody(chunk: Buffer): boolean {
    return request.writeUpstreamBody(this, chunk);
  }

  finishUpstreamRequest(): void {
    if (this.upstreamDone) return;
    if (this.facts.bodyKind === BODY_CHUNKED) this.ps!.socket.write(lastChunk(this.reqTrailers), "latin1");
    this.upstreamDone = true;
    if (!this.resHeadSeen) this.session.deadline.set(this.ropts!.upstreamHeadersTimeout, T_UPSTREAM_HEADERS);
  }

  // ---- request body from the client ---------------------------------------------------------

  requestBody(chunk: Buffer): void {
    request.requestBody(this, chunk);
  }

  requestTrailers(trailers: string[]): void {
    this.reqTrailers = trailers;
  }

  requestEnd(): void {
    request.requestEnd(this);
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
    upstream.onUpstreamData(this, chunk);
  }

  /** A tap read `res.body` of the upstream response (HttpResponse's BodyOpener). */
  openResponseBody(): Readable {
    return openResponseStream(this);
  }

  onResponseHead(h: RawHead): BodyKind {
    return response.onResponseHead(this, h);
  }

  writeResponseHead(status: number, message: string | undefined, headers: Headers, rf: ResponseFacts, extra: string): void {
    response.writeResponseHead(this, status, message, headers, rf, extra);
  }

  onResponseBody(chunk: Buffer): void {
    // a slice of the upstream read buffer lives only until this read returns; the body is kept
    // longer (queued on the client socket, held or streamed for taps)
    response.onResponseBody(this, ownBytes(chunk));
  }

  writeDown(chunk: Buffer): boolean {
    return response.writeDown(this, chunk);
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
    response.onResponseComplete(this);
  }

  endDown(): void {
    response.endDown(this);
  }

  onUpstreamEnd(): void {
    response.onUpstreamEnd(this);
  }

  onUpstreamClose(): void {
    this.upstreamLost();
  }

  /** The upstream socket ended or failed in the middle of this exchange. */
  upstreamLost(): void {
    response.upstreamLost(this);
  }

  releaseUpstream(clean: boolean): void {
    upstream.releaseUpstream(this, clean);
  }

  /** Closes the current upstream socket without reuse. */
  dropUpstream(): void {
    upstream.dropUpstream(this);
  }

  // ---- failures and answers -----------------------------------------------------------------

  upstreamFailed(err: Error, requestSent: boolean): void {
    failures.upstreamFailed(this, err, requestSent);
  }

  hookFailed(err: unknown, status: number): void {
    failures.hookFailed(this, err, status);
  }

  /** Answers with a short plain-text error; aborts the client connection if a head went down. */
  respondError(status: number, err: unknown): void {
    failures.respondError(this, status, err);
  }

  /** A tap answered directly. */
  respondDirect(r: DirectResponse): void {
    failures.respondDirect(this, r);
  }

  retry(delayMs: number, otherTarget: boolean): void {
    request.retry(this, delayMs, otherTarget);
  }

  tooLarge(): void {
    failures.tooLarge(this);
  }

  /** The client sent a bad body, or closed before the request was complete. */
  clientFailed(err: HttpParseError | undefined): void {
    failures.clientFailed(this, err);
  }

  onTimeout(kind: number): void {
    failures.onTimeout(this, kind);
  }

  maybeFinish(): void {
    if (this.finished || !this.downDone) return;
    if (!this.requestComplete && !this.closeAfter) return;
    this.finished = true;
    if (this.requestTimer !== undefined) clearTimeout(this.requestTimer);
    if (this.continueTimer !== undefined) clearTimeout(this.continueTimer);
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
    if (this.continueTimer !== undefined) clearTimeout(this.continueTimer);
    if (this.target !== undefined && this.ropts !== undefined) this.runtime.pools.get(this.target, this.ropts.pool, this.route!.dynamic).cancel(this);
    this.dropUpstream();
    this.bodyStream?.destroy();
    this.resStream?.destroy();
  }

  startTunnel(rest: Buffer): void {
    response.startTunnel(this, rest);
  }
}
