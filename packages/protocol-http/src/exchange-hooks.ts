/**
 * The tapped path of an exchange: builds the typed messages, awaits `onRequest` /
 * `onUpstreamResponse`, and applies what taps decided (another target, a direct answer, a
 * changed message, a retry after a cancellable delay).
 */
import { Readable } from "node:stream";
import { setHeader, type HttpRequestMessage, type HttpUpstreamResponse, type ProxyError, type RouteMatchResult } from "@switchyard/core";
import { statusForError } from "./errors-response.js";
import type { Exchange } from "./exchange.js";
import { inviteBody } from "./exchange-request.js";
import { writeBodiless } from "./exchange-response.js";
import { authorityOf, bodilessStatus, BODY_LENGTH, BODY_NONE, pairsForTaps, requestPath, serializeRequestHead, type ResponseFacts } from "./head.js";
import type { RawHead } from "./internal/parser.js";
import { HttpRequest, HttpResponse } from "./message.js";

export function runRequestHook(ex: Exchange, m: RouteMatchResult, url: string): void {
  const f = ex.facts;
  const session = ex.session;
  let body: Readable | null = null;
  if (f.bodyKind !== BODY_NONE) {
    body = new Readable({
      highWaterMark: 64 * 1024,
      read: () => {
        // a tap reading the body before the upstream has the request: the client may be
        // waiting for a 100 that only we can send now
        if (!ex.sent) inviteBody(ex);
        session.resumeClient();
      },
    });
    ex.bodyStream = body;
    const q = ex.queue;
    ex.queue = undefined;
    ex.queuedBytes = 0;
    if (q !== undefined) for (const c of q) body.push(c);
    if (ex.requestComplete) body.push(null);
  }
  const headers = pairsForTaps(ex.head.headers, f.connectionTokens);
  if (f.hostOverride !== undefined) setHeader(headers, "Host", f.hostOverride);
  // the target is picked before the taps run, so they see (and may replace) the real one
  const msg = new HttpRequest({
    connection: ex.conn.info,
    target: m.route.balancer.pick(),
    id: ex.id,
    route: m.route,
    method: f.method,
    url,
    path: requestPath(f),
    httpVersion: f.http10 ? "1.0" : "1.1",
    headers,
    body,
    bodyLength: f.bodyKind === 1 ? f.contentLength : f.bodyKind === BODY_NONE ? 0 : undefined,
    upgrade: f.upgrade,
    scheme: ex.conn.info.tls ? "https" : "http",
  });
  ex.msg = msg;
  // callAsync, not promise(): when every tap is sync (the usual case) tapable calls back in
  // this same tick, so the hooked request goes upstream exactly like the untapped one
  // the callback may run in a promise continuation (async taps): a throw must not escape it
  ex.runtime.proxy.hooks.onRequest.callAsync(msg, (err: unknown, out?: unknown) => {
    try {
      if (err !== null && err !== undefined) {
        if (!ex.aborted) ex.hookFailed(err, 500);
        return;
      }
      const pending = msg.pendingBuffer;
      if (pending === undefined) return afterRequestHook(ex, msg, out as HttpRequestMessage);
      // a tap started bufferBody() without waiting for it: the body is buffered before sending
      pending.then(() => afterRequestHook(ex, msg, out as HttpRequestMessage)).catch((e: unknown) => ex.crashed(e));
    } catch (e) {
      ex.crashed(e);
    }
  });
}

function afterRequestHook(ex: Exchange, msg: HttpRequest, out: HttpRequestMessage): void {
  if (ex.aborted || ex.finished) return;
  if (out.response !== undefined) return ex.respondDirect(out.response);
  // the client's response is framed by the method it sent: an answer to HEAD has no body, one
  // to anything else has one; a tap turning a request into HEAD or a HEAD into something else
  // would get an answer that cannot be framed for the client
  if ((out.method === "HEAD") !== (ex.method === "HEAD")) {
    return ex.hookFailed(new Error(`an onRequest tap changed the method from ${ex.method} to ${out.method}`), 500);
  }
  ex.method = out.method;
  ex.reqOut = out;
  ex.target = out.target;
  ex.headStr = serializeHooked(ex, out);
  const buffered = msg.bufferedBody;
  if (buffered !== undefined) {
    ex.buffered = buffered;
    ex.bodyStream = undefined;
  }
  ex.connect();
}

/** The request head from what the `onRequest` taps left, for the exchange's current target. */
function serializeHooked(ex: Exchange, out: HttpRequestMessage): string {
  const f = ex.facts;
  const target = ex.target;
  return serializeRequestHead(out.method, out.url, out.headers, {
    bodyKind: f.bodyKind,
    contentLength: f.contentLength,
    upgrade: f.upgrade,
    hostOverride: undefined,
    connectionTokens: f.connectionTokens,
    dropExpect: ex.answered100,
    fallbackHost: target !== undefined ? authorityOf(target) : undefined,
  });
}

/**
 * A retry moved a tapped request to another target: tell the message (`target`, and its
 * `onRetarget` callback, which may edit headers such as Host) and write the head again.
 */
export function retargetHooked(ex: Exchange): void {
  const out = ex.reqOut;
  if (out === undefined || ex.target === undefined || out.target === ex.target) return;
  out.target = ex.target;
  const cb = (out as Partial<HttpRequest>).onRetarget;
  if (cb === undefined) return;
  cb(ex.target, out.headers);
  ex.headStr = serializeHooked(ex, out);
}

/** Can the exchange still be sent again? */
function canRetry(ex: Exchange, requestSent: boolean): boolean {
  if (ex.downStarted || ex.aborted || ex.deadlinePassed) return false;
  if (!requestSent) return ex.bodyStream === undefined || !ex.sent;
  return ex.replayable;
}

export function runResponseHook(ex: Exchange, h: RawHead, rf: ResponseFacts): void {
  ex.hooked = true;
  const hasBody = rf.bodyKind !== BODY_NONE;
  if (hasBody) ex.resHold = [];
  const res = new HttpResponse({
    attempt: ex.attempt,
    target: ex.target,
    error: undefined,
    retryable: canRetry(ex, true),
    requestSent: true,
    reusedSocket: ex.reused,
    status: h.statusCode,
    statusMessage: h.statusMessage,
    httpVersion: h.versionMinor === 0 ? "1.0" : "1.1",
    headers: pairsForTaps(h.headers, rf.connectionTokens),
    body: hasBody ? ex : null,
  });
  const attempt = ex.attempt;
  // callAsync: with sync taps only, the answer is decided inside the framer's onHead, so the
  // head and the body slices that follow go down in the same corked write as without taps
  let inline = true;
  ex.runtime.proxy.hooks.onUpstreamResponse.callAsync(res, ex.msg, (err: unknown, o?: unknown) => {
    const out = o as HttpUpstreamResponse;
    if (inline && ((err !== null && err !== undefined) || out.retry !== undefined)) {
      // failures and retries drop or reset the upstream framer: never while it is executing
      queueMicrotask(() => guardedResponseHookDone(ex, attempt, err, out, rf));
      return;
    }
    if (inline) responseHookDone(ex, attempt, err, out, rf);
    else guardedResponseHookDone(ex, attempt, err, out, rf);
  });
  inline = false;
}

/** responseHookDone off the framer's stack (a microtask or promise continuation): a throw fails the request only. */
function guardedResponseHookDone(ex: Exchange, attempt: number, err: unknown, out: HttpUpstreamResponse, rf: ResponseFacts): void {
  try {
    responseHookDone(ex, attempt, err, out, rf);
  } catch (e) {
    ex.crashed(e);
  }
}

function responseHookDone(ex: Exchange, attempt: number, err: unknown, out: HttpUpstreamResponse, rf: ResponseFacts): void {
  if (err !== null && err !== undefined) {
    if (!ex.aborted && ex.attempt === attempt) ex.hookFailed(err, 502);
    return;
  }
  const client = ex.session.socket;
  client.cork();
  try {
    afterResponseHook(ex, attempt, out, rf);
  } finally {
    client.uncork();
  }
}

/** A tap read `res.body`: from now on the body flows through a Readable. */
export function openResponseStream(ex: Exchange): Readable {
  const body = new Readable({ highWaterMark: 64 * 1024, read: () => ex.onClientDrain() });
  // the exchange handles an upstream failure itself: a tap holding the stream without an
  // 'error' listener (or only having opened it) must not turn it into an uncaught exception
  body.on("error", noop);
  for (const c of ex.resHold ?? []) body.push(c);
  ex.resHold = undefined;
  ex.resHoldBytes = 0;
  if (ex.upDone) body.push(null);
  ex.resStream = body;
  return body;
}

function afterResponseHook(ex: Exchange, attempt: number, out: HttpUpstreamResponse, rf: ResponseFacts): void {
  if (ex.aborted || ex.finished || ex.attempt !== attempt) return;
  const body = ex.resStream;
  if (out.retry !== undefined && canRetry(ex, true)) {
    body?.destroy();
    if (!ex.upDone) ex.dropUpstream();
    else if (ex.ps !== undefined) ex.releaseUpstream(true);
    return ex.retry(out.retry.delayMs, out.retry.otherTarget !== false);
  }
  const status = out.status ?? 502;
  // a tap that changed the status but not the reason phrase gets the standard phrase, not the
  // upstream's ("204 No Content", not "204 OK")
  const upstreamHead = ex.resHead!;
  if (status !== upstreamHead.statusCode && out.statusMessage === upstreamHead.statusMessage) out.statusMessage = undefined;
  // a tap made it a 204/304/1xx: a body would be read as the next response
  if (rf.bodyKind !== BODY_NONE && bodilessStatus(status)) return writeBodiless(ex, status, out.statusMessage, out.headers, rf);
  if (rf.bodyKind === BODY_NONE && ex.method !== "HEAD" && !bodilessStatus(status) && bodilessStatus(ex.resHead!.statusCode)) {
    // and the other way: a 204/304 made a 200 has an empty body, which must be declared (a
    // 304's Content-Length was the representation's; without one the client reads to the close)
    const headers = out.headers.filter(([k]) => k.length !== 14 || k.toLowerCase() !== "content-length");
    ex.writeResponseHead(status, out.statusMessage, headers, rf, "Content-Length: 0\r\n");
  } else ex.writeResponseHead(status, out.statusMessage, out.headers, rf, "");
  if (body === undefined) {
    // nobody opened the body: send what was held, then go direct
    const held = ex.resHold;
    ex.resHold = undefined;
    ex.resHoldBytes = 0;
    ex.hooked = false;
    if (held !== undefined) for (const c of held) ex.writeDown(c);
    if (ex.upDone || rf.bodyKind === BODY_NONE) {
      ex.endDown();
      // a bodiless head decided inside the framer's onHead (sync taps): the completion that
      // follows at once releases the socket for reuse (finishing now would close it)
      if (!ex.upDone) return;
      return ex.maybeFinish();
    }
    ex.onClientDrain();
    return;
  }
  // bytes a tap read from the stream are not the client's: a Content-Length body that comes up
  // short, or a stream a tap ended or destroyed before the proxy could finish it, cannot be
  // completed: abort rather than leave the client waiting for (or mis-framing) missing bytes
  let written = 0;
  const ended = () => {
    if (rf.bodyKind === BODY_LENGTH && written !== rf.contentLength) return ex.conn.destroy("plugin-error");
    ex.endDown();
    ex.maybeFinish();
  };
  if (body.readableEnded) return ended();
  if (body.destroyed) return ex.conn.destroy("plugin-error");
  body.on("data", (c: Buffer) => {
    written += c.length;
    if (!ex.writeDown(c)) body.pause();
  });
  body.once("end", ended);
  body.once("close", () => {
    if (!body.readableEnded && !ex.downDone) ex.conn.destroy("upstream-error");
  });
  if (body.isPaused()) body.resume();
}

function noop(): void {}

/** The upstream failed before answering: taps may retry or answer instead. */
export function runErrorHook(ex: Exchange, err: Error, requestSent: boolean): void {
  const res = new HttpResponse({
    attempt: ex.attempt,
    target: ex.target,
    error: err as ProxyError,
    retryable: canRetry(ex, requestSent),
    requestSent,
    reusedSocket: ex.reused,
    status: undefined,
    statusMessage: undefined,
    httpVersion: undefined,
    headers: [],
    body: null,
  });
  const attempt = ex.attempt;
  ex.runtime.proxy.hooks.onUpstreamResponse.promise(res, ex.msg).then(
    (o) => {
      const out = o as HttpUpstreamResponse;
      if (ex.aborted || ex.finished || ex.attempt !== attempt) return;
      if (out.retry !== undefined && canRetry(ex, requestSent)) return ex.retry(out.retry.delayMs, out.retry.otherTarget !== false);
      if (ex.headWritten) return ex.conn.destroy("upstream-error", err);
      if (out.error === undefined && out.status !== undefined) return ex.respondDirect({ status: out.status, headers: out.headers });
      ex.respondError(statusForError(out.error ?? err), out.error ?? err);
    },
    (e: unknown) => {
      if (!ex.aborted && ex.attempt === attempt) ex.hookFailed(e, 502);
    },
  ).catch((e: unknown) => ex.crashed(e));
}
