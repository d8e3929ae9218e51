/**
 * Failures and direct answers of an exchange: error responses with the request id (or an
 * aborted client connection once a head went down), tap answers, timeouts and limits.
 */
import { PluginError, UpstreamTimeoutError, type DirectResponse } from "@switchyard/core";
import { errorResponse, HttpStatusError, statusForError, type HttpParseError } from "./errors-response.js";
import { runErrorHook } from "./exchange-hooks.js";
import type { Exchange } from "./exchange.js";
import { bodilessStatus, BODY_LENGTH, BODY_NONE, toFlat } from "./head.js";
import { T_BODY, T_REQUEST, T_UPSTREAM_HEADERS } from "./internal/phases.js";

export function upstreamFailed(ex: Exchange, err: Error, requestSent: boolean): void {
  if (ex.aborted || ex.finished) return;
  ex.dropUpstream();
  const proxy = ex.runtime.proxy;
  if (ex.target !== undefined && proxy.events.listenerCount("upstreamError") > 0) {
    proxy.events.emit("upstreamError", { connection: ex.conn.info, target: ex.target, error: err as HttpStatusError });
  }
  if (proxy.hooks.onUpstreamResponse.isUsed() && !(err instanceof PluginError)) return runErrorHook(ex, err, requestSent);
  if (ex.headWritten) return ex.conn.destroy("upstream-error", err);
  ex.respondError(statusForError(err), err);
}

export function hookFailed(ex: Exchange, err: unknown, status: number): void {
  const proxy = ex.runtime.proxy;
  if (err instanceof PluginError) {
    proxy.logger.error("plugin failed", { id: ex.id, hook: err.hook, plugin: err.plugin, error: err.message });
    proxy.events.emit("pluginError", err);
  } else proxy.logger.error("hook failed", { id: ex.id, error: (err as Error)?.message ?? String(err) });
  // a tap that fails after its exchange was answered (a 502 for the upstream's reset while the
  // tap still read the body) must not touch the connection: it serves the next request now
  if (ex.aborted || ex.finished) return;
  if (ex.headWritten) return ex.conn.destroy("plugin-error", err);
  ex.respondError(status, err);
}

/** Answers with a short plain-text error; aborts the client connection if a head went down. */
export function respondError(ex: Exchange, status: number, err: unknown): void {
  if (ex.aborted || ex.finished) return;
  ex.dropUpstream();
  if (ex.headWritten) return ex.conn.destroy("upstream-error", err);
  ex.runtime.proxy.logger.info("request failed", { id: ex.id, status, error: (err as Error)?.message ?? String(err) });
  const bodyPending = !ex.requestComplete && ex.facts.bodyKind !== BODY_NONE;
  const close = bodyPending || status === 413 || !ex.session.keepAlive;
  if (bodyPending) {
    ex.discardBody = true;
    ex.session.closing = true;
  }
  ex.bodyStream?.resume();
  ex.headWritten = true;
  ex.downStarted = true;
  ex.closeAfter = close;
  ex.session.socket.write(errorResponse(status, ex.id, close, (ex.ropts ?? ex.session.opts).errorBodies, ex.method === "HEAD"));
  ex.downDone = true;
  ex.maybeFinish();
}

/** A tap answered directly. */
export function respondDirect(ex: Exchange, r: DirectResponse): void {
  const body = r.body === undefined ? Buffer.alloc(0) : typeof r.body === "string" ? Buffer.from(r.body) : r.body;
  const headers = toFlat(r.headers ?? []).filter((_, i, a) => i % 2 === 1 ? !/^content-length$/i.test(a[i - 1]!) : !/^content-length$/i.test(a[i]!));
  ex.discardBody = true;
  ex.bodyStream?.resume();
  // 204, 304 and 1xx carry no body whatever the tap gave (it would be read as the next response)
  const bodiless = bodilessStatus(r.status);
  const extra = bodiless ? "" : `Content-Length: ${body.length}\r\n`;
  ex.writeResponseHead(r.status, undefined, headers, { bodyKind: bodiless ? BODY_NONE : BODY_LENGTH, contentLength: bodiless ? 0 : body.length, reusable: false, connectionTokens: undefined }, extra);
  if (ex.method !== "HEAD" && !bodiless && body.length > 0) ex.session.socket.write(body);
  ex.downDone = true;
  ex.maybeFinish();
}

export function tooLarge(ex: Exchange): void {
  if (ex.headWritten) return ex.conn.destroy("protocol-error");
  ex.respondError(413, new HttpStatusError(413, "PRX_ERR_HTTP_BODY_TOO_LARGE", "request body too large"));
}

/** The client sent a bad body, or closed before the request was complete. */
export function clientFailed(ex: Exchange, err: HttpParseError | undefined): void {
  if (err === undefined || ex.headWritten) return ex.conn.destroy(err ? "protocol-error" : "client-closed", err);
  ex.respondError(err.status, err);
}

export function onTimeout(ex: Exchange, kind: number): void {
  if (ex.aborted || ex.finished) return;
  if (kind === T_UPSTREAM_HEADERS) {
    if (ex.resHeadSeen) return;
    return ex.upstreamFailed(new UpstreamTimeoutError("headers", "upstream response head timed out"), true);
  }
  if (ex.headWritten) return ex.conn.destroy("idle-timeout");
  if (kind === T_BODY && !ex.requestComplete) {
    // the client only stalled if we were ready for more of its body
    if (requestHeldByProxy(ex)) return ex.upstreamFailed(new UpstreamTimeoutError("body", "upstream stopped reading the request body"), true);
    // a client that asked for 100-continue and got none may rightly wait (expectContinueTimeout: 0)
    if (ex.facts.expectContinue && !ex.answered100 && !ex.downStarted && ex.bodyBytes === 0 && ex.sent) {
      return ex.upstreamFailed(new UpstreamTimeoutError("body", "upstream sent no 100 Continue and no response"), true);
    }
    return ex.respondError(408, new HttpStatusError(408, "PRX_ERR_HTTP_BODY_TIMEOUT", "request body timed out"));
  }
  if (kind === T_REQUEST) {
    // the total deadline: a retry waiting in its backoff is cancelled, and none may follow
    ex.deadlinePassed = true;
    if (ex.retryTimer !== undefined) clearTimeout(ex.retryTimer);
    ex.retryTimer = undefined;
  }
  ex.upstreamFailed(new UpstreamTimeoutError(kind === T_REQUEST ? "request" : "body"), true);
}

/**
 * The proxy holds request bytes it cannot pass on: the client is paused (the upstream socket's
 * buffer, a tap's body stream or the pre-connect queue is full) or the upstream socket has
 * unwritten bytes.
 */
function requestHeldByProxy(ex: Exchange): boolean {
  return ex.session.socket.isPaused() || (ex.ps !== undefined && ex.ps.socket.writableLength > 0);
}
