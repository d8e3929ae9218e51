/**
 * One request/response exchange: routing, the request head and body forwarded as slices over
 * an upstream attempt (attempt.ts: a pooled socket leased for one try), the response relayed
 * with the framing the client needs, the `onRequest` / `onUpstreamResponse` taps, and every
 * failure mapped to a status (or an aborted client connection once bytes went down). With no
 * hook tapped it runs without promises.
 *
 * The exchange's state is its own (private fields); what belongs to one try upstream (socket,
 * response head and facts, the body held for taps) is the current Attempt's, which a retry
 * replaces whole. Imports go one way: session → exchange → attempt → pool.
 */
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import {
  dial,
  PluginError,
  relay,
  setHeader,
  UpstreamResetError,
  UpstreamTimeoutError,
  type Connection,
  type DirectResponse,
  type HttpRequestMessage,
  type HttpUpstreamResponse,
  type ProxyError,
  type RequestRecord,
  type Route,
  type RouteKey,
  type RouteMatchResult,
  type Target,
} from "@switchyard/core";
import { Attempt, type AttemptOwner, type ClientSide } from "./attempt.js";
import { bodilessStatus, BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE } from "./body-kind.js";
import { errorResponse, HttpStatusError, statusForError, type HttpParseError } from "./errors-response.js";
import {
  authorityOf,
  connectionTokensOf,
  lastChunk,
  serializeRequestHead,
  serializeResponseHead,
  toFlat,
  pairsForTaps,
  requestPath,
  type Headers,
  type RequestFacts,
  type ResponseFacts,
} from "./head.js";
import type { Deadline } from "./internal/deadline.js";
import type { RawHead } from "./internal/parser.js";
import { T_BODY, T_REQUEST, T_UPSTREAM_HEADERS } from "./internal/phases.js";
import { HttpRequest, HttpResponse } from "./message.js";
import { resolveRouteOptions, type ResolvedListenerOptions, type ResolvedRouteOptions } from "./options.js";
import { UPSTREAM_ONREAD } from "./pool.js";
import { DRAIN_LIMIT } from "./response-drain.js";
import type { ProtocolRuntime } from "./runtime.js";
import { forwardUrl } from "./url.js";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
/** request body bytes queued while no upstream socket is ready, before the client is paused */
const QUEUE_HIGH_WATER = 64 * 1024;
/**
 * Response bytes queued on the client socket before the upstream is paused. Not the socket's
 * own 16 KiB mark: one 64 KiB read already passes that while the client is corked until the
 * check phase, and pausing there left the rest of a response read in the same turn for a
 * second syscall.
 */
const CLIENT_HIGH_WATER = 128 * 1024;
const CRLF = "\r\n";

/** What an exchange needs of the downstream session it runs on (session.ts). */
export interface ExchangeSession extends ClientSide {
  readonly conn: Connection;
  readonly runtime: ProtocolRuntime;
  readonly opts: ResolvedListenerOptions;
  readonly deadline: Deadline;
  /** requests read on the connection so far, this one included */
  readonly requests: number;
  /** keep-alive still possible after the current exchange */
  readonly keepAlive: boolean;
  readonly clientEnded: boolean;
  /** no further request is read on this connection (an early response, a failed body) */
  stopReading(): void;
  pauseClient(): void;
  resumeClient(): void;
  /** the response is written whole (and the request read whole, unless `reuse` is false) */
  exchangeDone(ex: Exchange, reuse: boolean): void;
  /** hands the client socket to a byte tunnel; returns bytes read ahead */
  detachForTunnel(): Buffer | undefined;
}

export class Exchange implements AttemptOwner {
  /** the session (the client side responses go to) */
  readonly client: ExchangeSession;
  readonly #conn: Connection;
  readonly #runtime: ProtocolRuntime;
  readonly #head: RawHead;
  readonly #facts: RequestFacts;
  readonly #seq: number;
  #method: string;
  #route: Route | undefined = undefined;
  #ropts: ResolvedRouteOptions | undefined = undefined;
  #target: Target | undefined = undefined;
  #tried: Set<Target> | undefined = undefined;
  /** the current try upstream (undefined before the first and while a retry waits) */
  #a: Attempt | undefined = undefined;
  /** the attempt number taps see: 1, then one more per retry */
  #attempt = 1;
  /** attempts made (sockets asked for) */
  #tries = 0;
  #staleRetried = false;
  #forceFresh = false;
  // request side
  #requestComplete = false;
  #bodyBytes = 0;
  #queue: Buffer[] | undefined = undefined;
  #queuedBytes = 0;
  #reqTrailers: string[] | undefined = undefined;
  #headStr = "";
  #discardBody = false;
  #clientPaused = false;
  #bodyStream: Readable | undefined = undefined;
  #buffered: Buffer | undefined = undefined;
  #msg: HttpRequest | undefined = undefined;
  /** what the onRequest taps returned (the head is rebuilt from it when a retry changes target) */
  #reqOut: HttpRequestMessage | undefined = undefined;
  #answered100 = false;
  // client side
  /** any byte (1xx included) went downstream: no more retries */
  #downStarted = false;
  /** the final response head went downstream */
  #headWritten = false;
  #downChunked = false;
  #closeAfter = false;
  #downDone = false;
  #aborted = false;
  #finished = false;
  #retryTimer: NodeJS.Timeout | undefined = undefined;
  /** requestTimeout fired: the request's total deadline is over, no attempt may follow */
  #deadlinePassed = false;
  #requestTimer: NodeJS.Timeout | undefined = undefined;
  /** expectContinueTimeout: the proxy's own 100 Continue if the upstream sends none */
  #continueTimer: NodeJS.Timeout | undefined = undefined;
  // the access-log record (requestComplete), measured only while someone listens
  #recorded = false;
  #startedAt = 0;
  #bytesOutAtStart = 0;
  #status = 0;
  #error: string | undefined = undefined;

  constructor(session: ExchangeSession, head: RawHead, facts: RequestFacts) {
    this.client = session;
    this.#conn = session.conn;
    this.#runtime = session.runtime;
    this.#head = head;
    this.#facts = facts;
    this.#method = facts.method;
    this.#seq = session.requests;
    if (this.#runtime.context.events.listenerCount("requestComplete") > 0) {
      this.#startedAt = performance.now();
      this.#bytesOutAtStart = session.socket.bytesWritten;
    }
  }

  get id(): string {
    return `${this.#conn.id}.${this.#seq}`;
  }

  /** the whole request was read from the client */
  get requestComplete(): boolean {
    return this.#requestComplete;
  }

  get #replayable(): boolean {
    return this.#facts.bodyKind === BODY_NONE || this.#buffered !== undefined;
  }

  // ---- routing ------------------------------------------------------------------------------

  start(): void {
    const f = this.#facts;
    const conn = this.#conn;
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
    const context = this.#runtime.context;
    let m: RouteMatchResult | undefined;
    try {
      // synchronous when only the route table answers onResolve (core counts route stats)
      m = context.tryResolveSync(conn, key);
    } catch (err) {
      return this.#routeFailed(err);
    }
    if (m !== undefined) return this.#routed(m);
    context
      .resolve(conn, key)
      .then(
        (r) => this.#routed(r),
        (err: unknown) => this.#routeFailed(err),
      )
      .catch((err: unknown) => this.crashed(err));
  }

  /**
   * A handler on an asynchronous path threw (a bug, or a plugin's malformed route): this request
   * fails — 500 if nothing went down yet, else the connection is cut — and the process goes on.
   */
  crashed(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.#runtime.context.logger.error("http exchange failed", { id: this.id, error: error.stack ?? error.message });
    if (this.#aborted || this.#finished) return;
    try {
      if (!this.#headWritten) return this.#respondError(500, error);
    } catch {
      // fall through: cut the connection
    }
    this.#failed(error);
    this.#conn.destroy("protocol-error", error);
  }

  #routeFailed(err: unknown): void {
    if (this.#aborted) return;
    let status = statusForError(err);
    if (err instanceof PluginError) return this.#hookFailed(err, 500);
    if (status === 404) {
      const hosts = this.client.opts.hosts;
      const sni = this.#conn.socket !== this.#conn.rawSocket ? this.#conn.info.servername : undefined;
      const misdirected = (sni !== undefined && sni.toLowerCase() !== this.#facts.host) || (hosts !== undefined && !hosts.some((h) => h.test(this.#facts.host)));
      if (misdirected) status = 421;
    }
    this.#respondError(status, err);
  }

  #routed(m: RouteMatchResult): void {
    if (this.#aborted) return;
    const route = m.route;
    this.#route = route;
    const session = this.client;
    const o = resolveRouteOptions(route, session.opts);
    this.#ropts = o;
    const f = this.#facts;
    if (o.maxBodySize > 0 && (f.contentLength > o.maxBodySize || this.#bodyBytes > o.maxBodySize)) {
      return this.#respondError(413, new HttpStatusError(413, "PRX_ERR_HTTP_BODY_TOO_LARGE", "request body too large"));
    }
    if (!this.#requestComplete) session.deadline.set(o.bodyTimeout, T_BODY);
    if (o.requestTimeout > 0) this.#requestTimer = setTimeout(() => this.onTimeout(T_REQUEST), o.requestTimeout);
    // the request-target goes upstream (normalised unless the listener says not); a rewrite starts from the normalised routing path
    const url = forwardUrl(f, m, o);
    if (typeof url !== "string") return this.#respondError(400, url);
    if (f.expectContinue && o.expectContinue === "answer" && !this.#requestComplete && !f.http10) {
      this.#answered100 = true;
      session.socket.write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (this.#runtime.context.hooks.onRequest.isUsed()) return this.#runRequestHook(m, url);
    const target = route.balancer.pick();
    this.#target = target;
    this.#headStr = serializeRequestHead(f.method, url, this.#head.headers, {
      bodyKind: f.bodyKind,
      contentLength: f.contentLength,
      upgrade: f.upgrade,
      hostOverride: f.hostOverride,
      connectionTokens: f.connectionTokens,
      dropExpect: this.#answered100,
      fallbackHost: f.http10 && target !== undefined ? authorityOf(target) : undefined,
    });
    this.#connect();
  }

  // ---- the upstream attempt -----------------------------------------------------------------

  /** Starts an attempt on the current target (unless answered, or an attempt holds a socket). */
  #connect(): void {
    if (this.#aborted || this.#finished || this.#a?.hasSocket === true) return;
    const target = this.#target;
    if (target === undefined) {
      return this.#respondError(503, new HttpStatusError(503, "PRX_ERR_HTTP_NO_TARGET", "route has no available target"));
    }
    this.#conn.target = target;
    const runtime = this.#runtime;
    const pool = runtime.pools.get(target, this.#ropts!.pool, this.#route!.dynamic);
    const a = new Attempt(this, target, pool, runtime.context, this.#method, this.#facts.upgrade, this.#facts.http10, this.#startedAt !== 0);
    this.#a = a;
    this.#tries++;
    a.acquire(this.#forceFresh);
  }

  /** @internal AttemptOwner */
  wants(a: Attempt): boolean {
    return a === this.#a && !this.#aborted && !this.#finished;
  }

  /** @internal AttemptOwner: a new socket for the pool, dialled for this attempt's target */
  dialUpstream(a: Attempt): Promise<Socket> {
    const timeoutMs = this.#ropts!.connectTimeout;
    // half-open capable: a tunnel (after a 101) must keep carrying client bytes after the
    // upstream's FIN; pooled HTTP use destroys the socket on any 'end' (attempt.ts, upstreamLost).
    // A pooled socket is the pool's, not the dialing connection's: other clients lease it too.
    if (this.#route!.dynamic) {
      return this.#runtime.context.dial(this.#conn, a.target, true, { allowHalfOpen: true, onread: UPSTREAM_ONREAD, pooled: true, timeoutMs });
    }
    return dial(a.target, { timeoutMs, allowHalfOpen: true, onread: UPSTREAM_ONREAD });
  }

  /** @internal AttemptOwner: a socket is leased; the head goes out with what body is here */
  attemptReady(a: Attempt): void {
    a.writeHead(this.#headStr);
    const f = this.#facts;
    const wait = this.#ropts!.expectContinueTimeout;
    if (f.expectContinue && !this.#answered100 && !this.#requestComplete && !f.http10 && wait > 0 && this.#continueTimer === undefined) {
      this.#continueTimer = setTimeout(() => {
        this.#continueTimer = undefined;
        this.#inviteBody();
      }, wait);
    }
    if (this.#buffered !== undefined) {
      if (this.#buffered.length > 0) this.#writeUpstreamBody(this.#buffered);
      this.#finishUpstreamRequest();
    } else if (this.#bodyStream !== undefined) {
      this.#streamToUpstream(this.#bodyStream);
    } else {
      const q = this.#queue;
      if (q !== undefined) {
        this.#queue = undefined;
        this.#queuedBytes = 0;
        for (let i = 0; i < q.length; i++) this.#writeUpstreamBody(q[i]!);
        if (!this.#clientPaused) this.client.resumeClient();
      }
      if (this.#requestComplete) this.#finishUpstreamRequest();
    }
    a.uncork();
  }

  /** @internal AttemptOwner */
  attemptFailed(_a: Attempt, err: Error, requestSent: boolean): void {
    this.#upstreamFailed(err, requestSent);
  }

  /** Gives the current attempt's socket back to its pool (reusable only if everything was clean). */
  #releaseUpstream(clean: boolean): void {
    const a = this.#a;
    if (a === undefined || !a.hasSocket) return;
    a.release(clean && a.reusable && !this.#aborted && !this.#runtime.context.closing);
  }

  /** Closes the current attempt's socket without reuse. */
  #dropUpstream(): void {
    this.#a?.drop();
  }

  #retry(delayMs: number, otherTarget: boolean): void {
    this.#attempt++;
    // the old attempt gave its socket back already; anything it still holds is closed
    this.#a?.drop();
    this.#a = undefined;
    const session = this.client;
    // the previous attempt's phase (upstream headers, response body) is over: no stale deadline
    // may fire during the backoff or the new connect (which has its own timeout). The upstream
    // headers deadline is armed again, from the route's options, once this attempt is sent.
    if (this.#requestComplete) session.deadline.clear();
    else session.deadline.set(this.#ropts!.bodyTimeout, T_BODY);
    if (otherTarget && this.#target !== undefined && this.#route !== undefined) {
      (this.#tried ??= new Set()).add(this.#target);
      this.#target = this.#route.balancer.pick(this.#tried) ?? this.#route.balancer.pick();
      if (this.#reqOut !== undefined) {
        try {
          this.#retargetHooked();
        } catch (err) {
          return this.#hookFailed(err, 502);
        }
      }
    }
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer); // one pending attempt at most
    this.#retryTimer = undefined;
    if (delayMs > 0) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#connect();
      }, delayMs);
    } else this.#connect();
  }

  // ---- the request body ---------------------------------------------------------------------

  /**
   * Sends the client our own `100 Continue` when it asked for one, none went down yet, and the
   * proxy needs its body: the upstream sent no 100 in `expectContinueTimeout` (an HTTP/1.0 server,
   * or one that waits for the body), or a tap reads the body before the upstream has the request
   * (plugin-retry buffering it for replay). Without it, client and proxy would wait for each other
   * until `bodyTimeout`. Not once a body byte came in or anything came back.
   */
  #inviteBody(): void {
    const f = this.#facts;
    if (!f.expectContinue || f.http10 || this.#answered100 || this.#aborted || this.#finished) return;
    const a = this.#a;
    if ((a !== undefined && (a.interim || a.headSeen)) || this.#headWritten || this.#downStarted || this.#requestComplete || this.#bodyBytes > 0) return;
    this.#answered100 = true; // Expect is dropped upstream if not sent yet; a later 100 from it is dropped
    this.client.socket.write("HTTP/1.1 100 Continue\r\n\r\n");
  }

  #writeUpstreamBody(chunk: Buffer): boolean {
    return this.#a!.writeBody(chunk, this.#facts.bodyKind === BODY_CHUNKED);
  }

  #finishUpstreamRequest(): void {
    const a = this.#a!;
    if (a.requestDone) return;
    a.finishRequest(this.#facts.bodyKind === BODY_CHUNKED, this.#reqTrailers);
    if (!a.headSeen) this.client.deadline.set(this.#ropts!.upstreamHeadersTimeout, T_UPSTREAM_HEADERS);
  }

  /** A slice of the request body from the client. */
  requestBody(chunk: Buffer): void {
    if (this.#aborted) return;
    this.#bodyBytes += chunk.length;
    const o = this.#ropts;
    if (o !== undefined && o.maxBodySize > 0 && this.#bodyBytes > o.maxBodySize) return this.#tooLarge();
    const session = this.client;
    session.deadline.set((o ?? session.opts).bodyTimeout, T_BODY);
    if (this.#discardBody) return;
    if (this.#bodyStream !== undefined) {
      if (!this.#bodyStream.push(chunk)) session.pauseClient();
      return;
    }
    const a = this.#a;
    if (a !== undefined && a.sent && a.hasSocket) {
      if (!this.#writeUpstreamBody(chunk)) {
        this.#clientPaused = true;
        session.pauseClient();
      }
      return;
    }
    (this.#queue ??= []).push(chunk);
    this.#queuedBytes += chunk.length;
    if (this.#queuedBytes > QUEUE_HIGH_WATER) session.pauseClient();
  }

  requestTrailers(trailers: string[]): void {
    this.#reqTrailers = trailers;
  }

  /** The request was read whole. */
  requestEnd(): void {
    this.#requestComplete = true;
    if (this.#aborted) return;
    const a = this.#a;
    if (this.#bodyStream !== undefined) this.#bodyStream.push(null);
    else if (a !== undefined && a.sent && a.hasSocket && !this.#discardBody) this.#finishUpstreamRequest();
    else if (a === undefined || !a.headSeen) this.client.deadline.clear();
    this.#maybeFinish();
  }

  /** @internal AttemptOwner: the upstream socket took what was written */
  upstreamDrained(): void {
    if (this.#clientPaused) {
      this.#clientPaused = false;
      this.client.resumeClient();
    }
    if (this.#bodyStream !== undefined && this.#bodyStream.isPaused()) this.#bodyStream.resume();
  }

  /** Streams a (hooked) request body to the upstream with backpressure. */
  #streamToUpstream(body: Readable): void {
    body.on("data", (c: Buffer) => {
      if (this.#a?.hasSocket !== true || this.#discardBody) return;
      if (!this.#writeUpstreamBody(c)) body.pause();
    });
    body.once("end", () => {
      if (this.#a?.hasSocket === true && !this.#discardBody) this.#finishUpstreamRequest();
    });
    body.resume();
  }

  // ---- the response -------------------------------------------------------------------------

  /** @internal AttemptOwner: a 1xx (not 101) is relayed or dropped */
  interimResponse(_a: Attempt, h: RawHead): void {
    const f = this.#facts;
    const relay100 = h.statusCode !== 100 || (f.expectContinue && !this.#answered100);
    if (!f.http10 && relay100 && !this.#headWritten) {
      this.#downStarted = true;
      this.client.socket.write(
        serializeResponseHead(h.statusCode, h.statusMessage, h.headers, { framing: BODY_NONE, close: false, keepAliveHeader: false, upgrade: false, connectionTokens: connectionTokensOf(h.headers), keepLength: false }),
        "latin1",
      );
    }
  }

  /** @internal AttemptOwner: the final response head was read */
  responseHead(a: Attempt): void {
    const h = a.head!;
    const rf = a.facts!;
    this.client.deadline.set(this.#ropts!.bodyTimeout, T_BODY);
    if (this.#runtime.context.hooks.onUpstreamResponse.isUsed()) return this.#runResponseHook(a, h, rf);
    this.#writeResponseHead(h.statusCode, h.statusMessage, h.headers, rf, "");
  }

  #writeResponseHead(status: number, message: string | undefined, headers: Headers, rf: ResponseFacts, extra: string): void {
    const f = this.#facts;
    const session = this.client;
    const bodyPending = !this.#requestComplete && f.bodyKind !== BODY_NONE;
    // a 1xx in the final response's place (a tap's choice): no final response follows, so the
    // client would take its next response for this request's: close after it
    let close = !session.keepAlive || bodyPending || status < 200;
    let framing = rf.bodyKind;
    if (framing === BODY_CHUNKED || framing === BODY_CLOSE) {
      if (f.http10) {
        framing = BODY_CLOSE;
        close = true;
      } else framing = BODY_CHUNKED;
    }
    this.#downChunked = framing === BODY_CHUNKED;
    this.#closeAfter = close;
    if (bodyPending) {
      // an early response: the rest of the request body is dropped and the connection closes
      this.#discardBody = true;
      session.stopReading();
    }
    this.#downStarted = true;
    this.#headWritten = true;
    this.#status = status;
    let s = serializeResponseHead(status, message, headers, {
      framing,
      close,
      keepAliveHeader: f.http10 && !close,
      upgrade: false,
      connectionTokens: rf.connectionTokens,
      // RFC 9110 §8.6: never a Content-Length on a 204 or 1xx (a sloppy upstream's would desync clients)
      keepLength: (framing === BODY_LENGTH || framing === BODY_NONE) && status !== 204 && status >= 200,
      contentLength: rf.contentLength,
      codings: rf.codings,
    });
    if (extra !== "") s = s.slice(0, -2) + extra + CRLF;
    session.socket.write(s, "latin1");
  }

  /** @internal AttemptOwner: a body slice that goes down now (not held for taps) */
  responseBody(a: Attempt, chunk: Buffer): void {
    this.client.deadline.set(this.#ropts!.bodyTimeout, T_BODY);
    if (a.holdBody(chunk)) return;
    this.#writeDown(chunk);
    if (this.client.socket.writableLength > CLIENT_HIGH_WATER) a.pause();
  }

  #writeDown(chunk: Buffer): boolean {
    const client = this.client.socket;
    if (this.#downChunked) {
      client.write(chunk.length.toString(16) + CRLF, "latin1");
      client.write(chunk);
      return client.write(CRLF, "latin1");
    }
    return client.write(chunk);
  }

  /** The client drained what was written: the upstream (and a tap's body stream) may go on. */
  onClientDrain(): void {
    const a = this.#a;
    if (a === undefined) return;
    a.resume();
    const rs = a.stream;
    if (rs !== undefined && rs.isPaused()) rs.resume();
  }

  /** @internal AttemptOwner: the response's end was read */
  responseComplete(_a: Attempt): void {
    this.#endDown();
  }

  /** @internal AttemptOwner: the response was read whole */
  responseRead(_a: Attempt, clean: boolean): void {
    this.#releaseUpstream(clean);
    this.#maybeFinish();
  }

  #endDown(): void {
    if (this.#downDone) return;
    if (this.#downChunked) this.client.socket.write(lastChunk(this.#a?.trailers), "latin1");
    this.#downDone = true;
  }

  /**
   * A tap turned the response into one that carries no body (204, 304, 1xx): the head goes down
   * alone and the exchange is over for the client. Body bytes already held are dropped; the rest
   * is drained in the background when the socket could be reused, otherwise the socket closes.
   */
  #writeBodiless(status: number, message: string | undefined, headers: Headers, rf: ResponseFacts): void {
    this.#writeResponseHead(status, message, headers, { ...rf, bodyKind: BODY_NONE }, "");
    const a = this.#a!;
    // every body byte read so far counts against the drain, held or already given to a tap
    const held = a.dropBody();
    this.#endDown();
    if (!a.complete && a.hasSocket) this.#drainUpstream(a, rf, held);
    this.#maybeFinish();
  }

  #drainUpstream(a: Attempt, rf: ResponseFacts, held: number): void {
    // a sync tap decides inside the framer's onHead: stop it there, onUpstreamData hands the
    // rest of the chunk to the drain (and a dropped socket's framer is never run again)
    a.stopFraming();
    const drainable = rf.reusable && a.requestDone && !this.#runtime.context.closing && rf.bodyKind !== BODY_CLOSE && rf.contentLength <= DRAIN_LIMIT;
    if (!drainable) return this.#dropUpstream();
    a.drain(held, this.#ropts!.bodyTimeout);
  }

  /** @internal AttemptOwner: the upstream socket ended or failed in the middle of this exchange */
  upstreamLost(a: Attempt): void {
    this.#dropUpstream();
    if (this.#aborted || this.#finished) return;
    if (!a.headSeen && !a.upgrading) {
      if (a.reused && !this.#staleRetried && !this.#downStarted && this.#replayable && IDEMPOTENT.has(this.#method)) {
        // a stale keep-alive socket: resend once on a fresh connection
        this.#staleRetried = true;
        this.#forceFresh = true;
        return this.#retry(0, false);
      }
      return this.#upstreamFailed(new UpstreamResetError("upstream closed the connection before responding"), true);
    }
    if (a.complete) return this.#maybeFinish();
    a.failStream(new UpstreamResetError("upstream closed mid-response"));
    if (!this.#headWritten) return this.#respondError(502, new UpstreamResetError("upstream closed mid-response"));
    this.#runtime.context.logger.info("upstream closed mid-response", { id: this.id });
    this.#error ??= "PRX_ERR_UPSTREAM_RESET";
    this.#conn.destroy("upstream-closed");
  }

  /** @internal AttemptOwner: a 101 was read; the connection becomes a byte tunnel */
  upgraded(a: Attempt, rest: Buffer): void {
    const h = a.head!;
    this.#finished = true;
    if (this.#requestTimer !== undefined) clearTimeout(this.#requestTimer);
    if (this.#continueTimer !== undefined) clearTimeout(this.#continueTimer);
    const upstream = a.detach();
    const session = this.client;
    const client = session.socket;
    client.write(
      serializeResponseHead(101, h.statusMessage, h.headers, { framing: BODY_NONE, close: false, keepAliveHeader: false, upgrade: true, connectionTokens: connectionTokensOf(h.headers), keepLength: false }),
      "latin1",
    );
    this.#status = 101;
    this.#record();
    const pending = session.detachForTunnel();
    if (rest.length > 0) client.write(rest);
    upstream.resume();
    relay(this.#conn, upstream, {
      idleMs: this.#runtime.context.timeoutsFor(this.#conn).idle,
      head: pending === undefined ? undefined : [pending],
      clientEnded: session.clientEnded,
    });
  }

  // ---- onRequest taps -----------------------------------------------------------------------

  #runRequestHook(m: RouteMatchResult, url: string): void {
    const f = this.#facts;
    const session = this.client;
    const conn = this.#conn;
    let body: Readable | null = null;
    if (f.bodyKind !== BODY_NONE) {
      body = new Readable({
        highWaterMark: 64 * 1024,
        read: () => {
          // a tap reading the body before the upstream has the request: the client may be
          // waiting for a 100 that only we can send now
          if (this.#a?.sent !== true) this.#inviteBody();
          session.resumeClient();
        },
      });
      this.#bodyStream = body;
      const q = this.#queue;
      this.#queue = undefined;
      this.#queuedBytes = 0;
      if (q !== undefined) for (const c of q) body.push(c);
      if (this.#requestComplete) body.push(null);
    }
    const headers = pairsForTaps(this.#head.headers, f.connectionTokens);
    if (f.hostOverride !== undefined) setHeader(headers, "Host", f.hostOverride);
    // the target is picked before the taps run, so they see (and may replace) the real one
    const msg = new HttpRequest({
      connection: conn.info,
      target: m.route.balancer.pick(),
      id: this.id,
      route: m.route,
      method: f.method,
      url,
      path: requestPath(f),
      httpVersion: f.http10 ? "1.0" : "1.1",
      headers,
      body,
      bodyLength: f.bodyKind === BODY_LENGTH ? f.contentLength : f.bodyKind === BODY_NONE ? 0 : undefined,
      upgrade: f.upgrade,
      scheme: conn.info.tls ? "https" : "http",
    });
    this.#msg = msg;
    // callAsync, not promise(): when every tap is sync (the usual case) tapable calls back in
    // this same tick, so the hooked request goes upstream exactly like the untapped one
    // the callback may run in a promise continuation (async taps): a throw must not escape it
    this.#runtime.context.hooks.onRequest.callAsync(msg, (err: unknown, out?: unknown) => {
      try {
        if (err !== null && err !== undefined) {
          if (!this.#aborted) this.#hookFailed(err, 500);
          return;
        }
        const pending = msg.pendingBuffer;
        if (pending === undefined) return this.#afterRequestHook(msg, out as HttpRequestMessage);
        // a tap started bufferBody() without waiting for it: the body is buffered before sending
        pending.then(() => this.#afterRequestHook(msg, out as HttpRequestMessage)).catch((e: unknown) => this.crashed(e));
      } catch (e) {
        this.crashed(e);
      }
    });
  }

  #afterRequestHook(msg: HttpRequest, out: HttpRequestMessage): void {
    if (this.#aborted || this.#finished) return;
    if (out.response !== undefined) return this.#respondDirect(out.response);
    // the client's response is framed by the method it sent: an answer to HEAD has no body, one
    // to anything else has one; a tap turning a request into HEAD or a HEAD into something else
    // would get an answer that cannot be framed for the client
    if ((out.method === "HEAD") !== (this.#method === "HEAD")) {
      return this.#hookFailed(new Error(`an onRequest tap changed the method from ${this.#method} to ${out.method}`), 500);
    }
    this.#method = out.method;
    this.#reqOut = out;
    this.#target = out.target;
    this.#headStr = this.#serializeHooked(out);
    const buffered = msg.bufferedBody;
    if (buffered !== undefined) {
      this.#buffered = buffered;
      this.#bodyStream = undefined;
    }
    this.#connect();
  }

  /** The request head from what the `onRequest` taps left, for the exchange's current target. */
  #serializeHooked(out: HttpRequestMessage): string {
    const f = this.#facts;
    const target = this.#target;
    return serializeRequestHead(out.method, out.url, out.headers, {
      bodyKind: f.bodyKind,
      contentLength: f.contentLength,
      upgrade: f.upgrade,
      hostOverride: undefined,
      connectionTokens: f.connectionTokens,
      dropExpect: this.#answered100,
      fallbackHost: target !== undefined ? authorityOf(target) : undefined,
    });
  }

  /**
   * A retry moved a tapped request to another target: tell the message (`target`, and its
   * `onRetarget` callback, which may edit headers such as Host) and write the head again.
   */
  #retargetHooked(): void {
    const out = this.#reqOut;
    const target = this.#target;
    if (out === undefined || target === undefined || out.target === target) return;
    out.target = target;
    const cb = (out as Partial<HttpRequest>).onRetarget;
    if (cb === undefined) return;
    cb(target, out.headers);
    this.#headStr = this.#serializeHooked(out);
  }

  /** Can the exchange still be sent again? */
  #canRetry(requestSent: boolean): boolean {
    if (this.#downStarted || this.#aborted || this.#deadlinePassed) return false;
    if (!requestSent) return this.#bodyStream === undefined || this.#a?.sent !== true;
    return this.#replayable;
  }

  // ---- onUpstreamResponse taps --------------------------------------------------------------

  #runResponseHook(a: Attempt, h: RawHead, rf: ResponseFacts): void {
    const hasBody = rf.bodyKind !== BODY_NONE;
    a.holdForTaps(hasBody);
    const res = new HttpResponse({
      attempt: this.#attempt,
      target: this.#target,
      error: undefined,
      retryable: this.#canRetry(true),
      requestSent: true,
      reusedSocket: a.reused,
      status: h.statusCode,
      statusMessage: h.statusMessage,
      httpVersion: h.versionMinor === 0 ? "1.0" : "1.1",
      headers: pairsForTaps(h.headers, rf.connectionTokens),
      body: hasBody ? a : null,
    });
    const attempt = this.#attempt;
    // callAsync: with sync taps only, the answer is decided inside the framer's onHead, so the
    // head and the body slices that follow go down in the same corked write as without taps
    let inline = true;
    this.#runtime.context.hooks.onUpstreamResponse.callAsync(res, this.#msg, (err: unknown, o?: unknown) => {
      const out = o as HttpUpstreamResponse;
      if (inline && ((err !== null && err !== undefined) || out.retry !== undefined)) {
        // failures and retries drop or reset the upstream framer: never while it is executing
        queueMicrotask(() => this.#guardedResponseHookDone(attempt, err, out, rf));
        return;
      }
      if (inline) this.#responseHookDone(attempt, err, out, rf);
      else this.#guardedResponseHookDone(attempt, err, out, rf);
    });
    inline = false;
  }

  /** #responseHookDone off the framer's stack (a microtask or promise continuation): a throw fails the request only. */
  #guardedResponseHookDone(attempt: number, err: unknown, out: HttpUpstreamResponse, rf: ResponseFacts): void {
    try {
      this.#responseHookDone(attempt, err, out, rf);
    } catch (e) {
      this.crashed(e);
    }
  }

  #responseHookDone(attempt: number, err: unknown, out: HttpUpstreamResponse, rf: ResponseFacts): void {
    if (err !== null && err !== undefined) {
      if (!this.#aborted && this.#attempt === attempt) this.#hookFailed(err, 502);
      return;
    }
    const client = this.client.socket;
    client.cork();
    try {
      this.#afterResponseHook(attempt, out, rf);
    } finally {
      client.uncork();
    }
  }

  #afterResponseHook(attempt: number, out: HttpUpstreamResponse, rf: ResponseFacts): void {
    if (this.#aborted || this.#finished || this.#attempt !== attempt) return;
    const a = this.#a!;
    const body = a.stream;
    if (out.retry !== undefined && this.#canRetry(true)) {
      body?.destroy();
      if (!a.complete) this.#dropUpstream();
      else this.#releaseUpstream(true);
      return this.#retry(out.retry.delayMs, out.retry.otherTarget !== false);
    }
    const status = out.status ?? 502;
    // a tap that changed the status but not the reason phrase gets the standard phrase, not the
    // upstream's ("204 No Content", not "204 OK")
    const upstreamHead = a.head!;
    if (status !== upstreamHead.statusCode && out.statusMessage === upstreamHead.statusMessage) out.statusMessage = undefined;
    // a tap made it a 204/304/1xx: a body would be read as the next response
    if (rf.bodyKind !== BODY_NONE && bodilessStatus(status)) return this.#writeBodiless(status, out.statusMessage, out.headers, rf);
    if (rf.bodyKind === BODY_NONE && this.#method !== "HEAD" && !bodilessStatus(status) && bodilessStatus(upstreamHead.statusCode)) {
      // and the other way: a 204/304 made a 200 has an empty body, which must be declared (a
      // 304's Content-Length was the representation's; without one the client reads to the close)
      const headers = out.headers.filter(([k]) => k.length !== 14 || k.toLowerCase() !== "content-length");
      this.#writeResponseHead(status, out.statusMessage, headers, rf, "Content-Length: 0\r\n");
    } else this.#writeResponseHead(status, out.statusMessage, out.headers, rf, "");
    if (body === undefined) {
      // nobody opened the body: send what was held, then go direct
      const held = a.takeHeld();
      if (held !== undefined) for (const c of held) this.#writeDown(c);
      if (a.complete || rf.bodyKind === BODY_NONE) {
        this.#endDown();
        // a bodiless head decided inside the framer's onHead (sync taps): the completion that
        // follows at once releases the socket for reuse (finishing now would close it)
        if (!a.complete) return;
        return this.#maybeFinish();
      }
      this.onClientDrain();
      return;
    }
    // bytes a tap read from the stream are not the client's: a Content-Length body that comes up
    // short, or a stream a tap ended or destroyed before the proxy could finish it, cannot be
    // completed: abort rather than leave the client waiting for (or mis-framing) missing bytes
    let written = 0;
    const ended = () => {
      if (rf.bodyKind === BODY_LENGTH && written !== rf.contentLength) return this.#conn.destroy("plugin-error");
      this.#endDown();
      this.#maybeFinish();
    };
    if (body.readableEnded) return ended();
    if (body.destroyed) return this.#conn.destroy("plugin-error");
    body.on("data", (c: Buffer) => {
      written += c.length;
      if (!this.#writeDown(c)) body.pause();
    });
    body.once("end", ended);
    body.once("close", () => {
      if (!body.readableEnded && !this.#downDone) this.#conn.destroy("upstream-error");
    });
    if (body.isPaused()) body.resume();
  }

  /** The upstream failed before answering: taps may retry or answer instead. */
  #runErrorHook(err: Error, requestSent: boolean): void {
    const res = new HttpResponse({
      attempt: this.#attempt,
      target: this.#target,
      error: err as ProxyError,
      retryable: this.#canRetry(requestSent),
      requestSent,
      reusedSocket: this.#a?.reused === true,
      status: undefined,
      statusMessage: undefined,
      httpVersion: undefined,
      headers: [],
      body: null,
    });
    const attempt = this.#attempt;
    this.#runtime.context.hooks.onUpstreamResponse.promise(res, this.#msg).then(
      (o) => {
        const out = o as HttpUpstreamResponse;
        if (this.#aborted || this.#finished || this.#attempt !== attempt) return;
        if (out.retry !== undefined && this.#canRetry(requestSent)) return this.#retry(out.retry.delayMs, out.retry.otherTarget !== false);
        if (this.#headWritten) return this.#conn.destroy("upstream-error", err);
        if (out.error === undefined && out.status !== undefined) return this.#respondDirect({ status: out.status, headers: out.headers });
        this.#respondError(statusForError(out.error ?? err), out.error ?? err);
      },
      (e: unknown) => {
        if (!this.#aborted && this.#attempt === attempt) this.#hookFailed(e, 502);
      },
    ).catch((e: unknown) => this.crashed(e));
  }

  // ---- failures and answers -----------------------------------------------------------------

  #upstreamFailed(err: Error, requestSent: boolean): void {
    if (this.#aborted || this.#finished) return;
    this.#dropUpstream();
    this.#failed(err);
    const context = this.#runtime.context;
    if (this.#target !== undefined && context.events.listenerCount("upstreamError") > 0) {
      context.events.emit("upstreamError", { connection: this.#conn.info, target: this.#target, error: err as HttpStatusError });
    }
    if (context.hooks.onUpstreamResponse.isUsed() && !(err instanceof PluginError)) return this.#runErrorHook(err, requestSent);
    if (this.#headWritten) return this.#conn.destroy("upstream-error", err);
    this.#respondError(statusForError(err), err);
  }

  #hookFailed(err: unknown, status: number): void {
    const context = this.#runtime.context;
    if (err instanceof PluginError) {
      context.logger.error("plugin failed", { id: this.id, hook: err.hook, plugin: err.plugin, error: err.message });
      context.events.emit("pluginError", err);
    } else context.logger.error("hook failed", { id: this.id, error: (err as Error)?.message ?? String(err) });
    // a tap that fails after its exchange was answered (a 502 for the upstream's reset while the
    // tap still read the body) must not touch the connection: it serves the next request now
    if (this.#aborted || this.#finished) return;
    this.#failed(err);
    if (this.#headWritten) return this.#conn.destroy("plugin-error", err);
    this.#respondError(status, err);
  }

  /** Answers with a short plain-text error; aborts the client connection if a head went down. */
  #respondError(status: number, err: unknown): void {
    if (this.#aborted || this.#finished) return;
    this.#dropUpstream();
    this.#failed(err);
    if (this.#headWritten) return this.#conn.destroy("upstream-error", err);
    const session = this.client;
    this.#runtime.context.logger.info("request failed", { id: this.id, status, error: (err as Error)?.message ?? String(err) });
    const bodyPending = !this.#requestComplete && this.#facts.bodyKind !== BODY_NONE;
    const close = bodyPending || status === 413 || !session.keepAlive;
    if (bodyPending) {
      this.#discardBody = true;
      session.stopReading();
    }
    this.#bodyStream?.resume();
    this.#headWritten = true;
    this.#downStarted = true;
    this.#closeAfter = close;
    this.#status = status;
    session.socket.write(errorResponse(status, this.id, close, (this.#ropts ?? session.opts).errorBodies, this.#method === "HEAD"));
    this.#downDone = true;
    this.#maybeFinish();
  }

  /** A tap answered directly. */
  #respondDirect(r: DirectResponse): void {
    const body = r.body === undefined ? Buffer.alloc(0) : typeof r.body === "string" ? Buffer.from(r.body) : r.body;
    const headers = toFlat(r.headers ?? []).filter((_, i, a) => i % 2 === 1 ? !/^content-length$/i.test(a[i - 1]!) : !/^content-length$/i.test(a[i]!));
    this.#discardBody = true;
    this.#bodyStream?.resume();
    // 204, 304 and 1xx carry no body whatever the tap gave (it would be read as the next response)
    const bodiless = bodilessStatus(r.status);
    const extra = bodiless ? "" : `Content-Length: ${body.length}\r\n`;
    this.#writeResponseHead(r.status, undefined, headers, { bodyKind: bodiless ? BODY_NONE : BODY_LENGTH, contentLength: bodiless ? 0 : body.length, reusable: false, connectionTokens: undefined, codings: undefined }, extra);
    if (this.#method !== "HEAD" && !bodiless && body.length > 0) this.client.socket.write(body);
    this.#downDone = true;
    this.#maybeFinish();
  }

  #tooLarge(): void {
    const err = new HttpStatusError(413, "PRX_ERR_HTTP_BODY_TOO_LARGE", "request body too large");
    if (this.#headWritten) {
      this.#failed(err);
      return this.#conn.destroy("protocol-error");
    }
    this.#respondError(413, err);
  }

  /** The client sent a bad body, or closed before the request was complete. */
  clientFailed(err: HttpParseError | undefined): void {
    if (err === undefined || this.#headWritten) {
      if (err !== undefined) this.#failed(err);
      return this.#conn.destroy(err ? "protocol-error" : "client-closed", err);
    }
    this.#respondError(err.status, err);
  }

  /** A session deadline this exchange is waiting on expired (or the request's total deadline). */
  onTimeout(kind: number): void {
    if (this.#aborted || this.#finished) return;
    const a = this.#a;
    if (kind === T_UPSTREAM_HEADERS) {
      if (a !== undefined && a.headSeen) return;
      return this.#upstreamFailed(new UpstreamTimeoutError("headers", "upstream response head timed out"), true);
    }
    if (this.#headWritten) {
      this.#error ??= "PRX_ERR_UPSTREAM_TIMEOUT";
      return this.#conn.destroy("idle-timeout");
    }
    if (kind === T_BODY && !this.#requestComplete) {
      // the client only stalled if we were ready for more of its body
      if (this.#requestHeldByProxy()) return this.#upstreamFailed(new UpstreamTimeoutError("body", "upstream stopped reading the request body"), true);
      // a client that asked for 100-continue and got none may rightly wait (expectContinueTimeout: 0)
      if (this.#facts.expectContinue && !this.#answered100 && !this.#downStarted && this.#bodyBytes === 0 && a !== undefined && a.sent) {
        return this.#upstreamFailed(new UpstreamTimeoutError("body", "upstream sent no 100 Continue and no response"), true);
      }
      return this.#respondError(408, new HttpStatusError(408, "PRX_ERR_HTTP_BODY_TIMEOUT", "request body timed out"));
    }
    if (kind === T_REQUEST) {
      // the total deadline: a retry waiting in its backoff is cancelled, and none may follow
      this.#deadlinePassed = true;
      if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.#upstreamFailed(new UpstreamTimeoutError(kind === T_REQUEST ? "request" : "body"), true);
  }

  /**
   * The proxy holds request bytes it cannot pass on: the client is paused (the upstream socket's
   * buffer, a tap's body stream or the pre-connect queue is full) or the upstream socket has
   * unwritten bytes.
   */
  #requestHeldByProxy(): boolean {
    return this.client.socket.isPaused() || this.#a?.unwritten === true;
  }

  #maybeFinish(): void {
    if (this.#finished || !this.#downDone) return;
    if (!this.#requestComplete && !this.#closeAfter) return;
    this.#finished = true;
    if (this.#requestTimer !== undefined) clearTimeout(this.#requestTimer);
    if (this.#continueTimer !== undefined) clearTimeout(this.#continueTimer);
    const a = this.#a;
    if (a !== undefined && a.hasSocket && a.complete) this.#releaseUpstream(true);
    else this.#dropUpstream();
    this.#record();
    this.client.exchangeDone(this, !this.#closeAfter);
  }

  /** The client went away: cancel everything this exchange holds. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    if (this.#requestTimer !== undefined) clearTimeout(this.#requestTimer);
    if (this.#continueTimer !== undefined) clearTimeout(this.#continueTimer);
    const a = this.#a;
    if (a !== undefined) {
      a.cancel();
      a.drop();
      a.failStream();
    }
    this.#bodyStream?.destroy();
    this.#record();
  }

  // ---- the access-log record ----------------------------------------------------------------

  /** Keeps the first failure's code for the record. */
  #failed(err: unknown): void {
    if (this.#error !== undefined) return;
    const code = (err as { code?: unknown } | undefined)?.code;
    this.#error = typeof code === "string" ? code : "PRX_ERR_INTERNAL";
  }

  /** Emits `requestComplete` once, when someone listened since the request began. */
  #record(): void {
    if (this.#recorded) return;
    this.#recorded = true;
    if (this.#startedAt === 0) return;
    const context = this.#runtime.context;
    if (context.events.listenerCount("requestComplete") === 0) return;
    const conn = this.#conn;
    const f = this.#facts;
    const a = this.#a;
    const target = a?.target ?? this.#target;
    const ttfb = a !== undefined && a.sentAt > 0 && a.firstByteAt >= a.sentAt ? a.firstByteAt - a.sentAt : undefined;
    const record: RequestRecord = {
      id: this.id,
      connectionId: conn.id,
      listener: conn.listener.name,
      protocol: "http",
      route: this.#route?.name,
      target: target === undefined ? undefined : hostPort(target),
      clientIp: conn.clientIp,
      method: f.method,
      // the normalised path the request was routed by (what plugins see as req.path)
      path: requestPath(f),
      status: this.#status,
      durationMs: performance.now() - this.#startedAt,
      upstreamTtfbMs: ttfb,
      bytesIn: this.#bodyBytes,
      bytesOut: this.client.socket.bytesWritten - this.#bytesOutAtStart,
      attempts: this.#tries,
      error: this.#error,
    };
    context.events.emit("requestComplete", record);
  }
}

/** "host:port" ("[v6]:port") */
function hostPort(t: Target): string {
  return t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}
