/**
 * The request side of an exchange: routing result applied (limits, rewrite, 100-continue), the
 * head written as one string, body slices forwarded as they come (queued while the upstream
 * socket is not ready, re-chunked when chunked), and retries on a new socket.
 */
import type { Readable } from "node:stream";
import type { RouteMatchResult } from "@switchyard/core";
import { HttpStatusError } from "./errors-response.js";
import { retargetHooked, runRequestHook } from "./exchange-hooks.js";
import type { Exchange } from "./exchange.js";
import { authorityOf, BODY_CHUNKED, serializeRequestHead } from "./head.js";
import { T_BODY, T_REQUEST } from "./internal/phases.js";
import { resolveRouteOptions } from "./options.js";
import { forwardUrl } from "./url.js";

const QUEUE_HIGH_WATER = 64 * 1024;
const CRLF = "\r\n";

export function sendRequest(ex: Exchange): void {
  const sock = ex.ps!.socket;
  sock.cork();
  sock.write(ex.headStr, "latin1");
  ex.sent = true;
  const wait = ex.ropts!.expectContinueTimeout;
  if (ex.facts.expectContinue && !ex.answered100 && !ex.requestComplete && !ex.facts.http10 && wait > 0 && ex.continueTimer === undefined) {
    ex.continueTimer = setTimeout(() => sendOwnContinue(ex), wait);
  }
  if (ex.buffered !== undefined) {
    if (ex.buffered.length > 0) ex.writeUpstreamBody(ex.buffered);
    ex.finishUpstreamRequest();
  } else if (ex.bodyStream !== undefined) {
    streamToUpstream(ex, ex.bodyStream);
  } else {
    const q = ex.queue;
    if (q !== undefined) {
      ex.queue = undefined;
      ex.queuedBytes = 0;
      for (let i = 0; i < q.length; i++) ex.writeUpstreamBody(q[i]!);
      if (!ex.clientPaused) ex.session.resumeClient();
    }
    if (ex.requestComplete) ex.finishUpstreamRequest();
  }
  sock.uncork();
}

function sendOwnContinue(ex: Exchange): void {
  ex.continueTimer = undefined;
  inviteBody(ex);
}

/**
 * Sends the client our own `100 Continue` when it asked for one, none went down yet, and the
 * proxy needs its body: the upstream sent no 100 in `expectContinueTimeout` (an HTTP/1.0 server,
 * or one that waits for the body), or a tap reads the body before the upstream has the request
 * (plugin-retry buffering it for replay). Without it, client and proxy would wait for each other
 * until `bodyTimeout`. Not once a body byte came in or anything came back.
 */
export function inviteBody(ex: Exchange): void {
  const f = ex.facts;
  if (!f.expectContinue || f.http10 || ex.answered100 || ex.aborted || ex.finished) return;
  if (ex.interim || ex.resHeadSeen || ex.headWritten || ex.downStarted || ex.requestComplete || ex.bodyBytes > 0) return;
  ex.answered100 = true; // Expect is dropped upstream if not sent yet; a later 100 from it is dropped
  ex.session.socket.write("HTTP/1.1 100 Continue\r\n\r\n");
}

export function writeUpstreamBody(ex: Exchange, chunk: Buffer): boolean {
  const sock = ex.ps!.socket;
  if (ex.facts.bodyKind === BODY_CHUNKED) {
    sock.write(chunk.length.toString(16) + CRLF, "latin1");
    sock.write(chunk);
    return sock.write(CRLF, "latin1");
  }
  return sock.write(chunk);
}

export function requestBody(ex: Exchange, chunk: Buffer): void {
  if (ex.aborted) return;
  ex.bodyBytes += chunk.length;
  const o = ex.ropts;
  if (o !== undefined && o.maxBodySize > 0 && ex.bodyBytes > o.maxBodySize) return ex.tooLarge();
  ex.session.deadline.set((o ?? ex.session.opts).bodyTimeout, T_BODY);
  if (ex.discardBody) return;
  if (ex.bodyStream !== undefined) {
    if (!ex.bodyStream.push(chunk)) ex.session.pauseClient();
    return;
  }
  if (ex.sent && ex.ps !== undefined) {
    if (!ex.writeUpstreamBody(chunk)) {
      ex.clientPaused = true;
      ex.session.pauseClient();
    }
    return;
  }
  (ex.queue ??= []).push(chunk);
  ex.queuedBytes += chunk.length;
  if (ex.queuedBytes > QUEUE_HIGH_WATER) ex.session.pauseClient();
}

export function requestEnd(ex: Exchange): void {
  ex.requestComplete = true;
  if (ex.aborted) return;
  if (ex.bodyStream !== undefined) ex.bodyStream.push(null);
  else if (ex.sent && ex.ps !== undefined && !ex.discardBody) ex.finishUpstreamRequest();
  else if (!ex.resHeadSeen) ex.session.deadline.clear();
  ex.maybeFinish();
}

export function retry(ex: Exchange, delayMs: number, otherTarget: boolean): void {
  ex.attempt++;
  ex.resHeadSeen = false;
  ex.interim = false;
  ex.rf = undefined;
  ex.resHead = undefined;
  ex.resTrailers = undefined;
  ex.resStream = undefined;
  ex.resHold = undefined;
  ex.resHoldBytes = 0;
  ex.resHookedBytes = 0;
  ex.hooked = false;
  ex.upDone = false;
  ex.sent = false;
  ex.upstreamDone = false;
  ex.upgrading = false;
  ex.reused = false;
  // the previous attempt's phase (upstream headers, response body) is over: no stale deadline
  // may fire during the backoff or the new connect (which has its own timeout). The upstream
  // headers deadline is armed again, from the route's options, once this attempt is sent.
  if (ex.requestComplete) ex.session.deadline.clear();
  else ex.session.deadline.set(ex.ropts!.bodyTimeout, T_BODY);
  if (otherTarget && ex.target !== undefined && ex.route !== undefined) {
    (ex.tried ??= new Set()).add(ex.target);
    ex.target = ex.route.balancer.pick(ex.tried) ?? ex.route.balancer.pick();
    if (ex.reqOut !== undefined) {
      try {
        retargetHooked(ex);
      } catch (err) {
        return ex.hookFailed(err, 502);
      }
    }
  }
  if (ex.retryTimer !== undefined) clearTimeout(ex.retryTimer); // one pending attempt at most
  ex.retryTimer = undefined;
  if (delayMs > 0) {
    ex.retryTimer = setTimeout(() => {
      ex.retryTimer = undefined;
      ex.connect();
    }, delayMs);
  } else ex.connect();
}

export function routed(ex: Exchange, m: RouteMatchResult): void {
  if (ex.aborted) return;
  const route = m.route;
  ex.route = route;
  const o = resolveRouteOptions(route, ex.session.opts);
  ex.ropts = o;
  const f = ex.facts;
  if (o.maxBodySize > 0 && (f.contentLength > o.maxBodySize || ex.bodyBytes > o.maxBodySize)) {
    return ex.respondError(413, new HttpStatusError(413, "PRX_ERR_HTTP_BODY_TOO_LARGE", "request body too large"));
  }
  if (!ex.requestComplete) ex.session.deadline.set(o.bodyTimeout, T_BODY);
  if (o.requestTimeout > 0) ex.requestTimer = setTimeout(() => ex.onTimeout(T_REQUEST), o.requestTimeout);
  // the request-target goes upstream (normalised unless the listener says not); a rewrite starts from the normalised routing path
  const url = forwardUrl(f, m, o);
  if (typeof url !== "string") return ex.respondError(400, url);
  if (f.expectContinue && o.expectContinue === "answer" && !ex.requestComplete && !f.http10) {
    ex.answered100 = true;
    ex.session.socket.write("HTTP/1.1 100 Continue\r\n\r\n");
  }
  if (ex.runtime.proxy.hooks.onRequest.isUsed()) return runRequestHook(ex, m, url);
  const target = route.balancer.pick();
  ex.target = target;
  ex.headStr = serializeRequestHead(f.method, url, ex.head.headers, {
    bodyKind: f.bodyKind,
    contentLength: f.contentLength,
    upgrade: f.upgrade,
    hostOverride: f.hostOverride,
    connectionTokens: f.connectionTokens,
    dropExpect: ex.answered100,
    fallbackHost: f.http10 && target !== undefined ? authorityOf(target) : undefined,
  });
  ex.connect();
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
