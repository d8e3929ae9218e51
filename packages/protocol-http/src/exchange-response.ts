/**
 * The response side of an exchange: the upstream's head and body relayed with the framing the
 * client needs (1xx relay policy, HEAD/204/304, re-chunking), upstream EOF and failures, and the
 * switch to a byte tunnel after a 101.
 */
import { relay, UpstreamResetError } from "@switchyard/core";
import { HttpParseError } from "./errors-response.js";
import { runResponseHook } from "./exchange-hooks.js";
import type { Exchange } from "./exchange.js";
import {
  analyzeResponse,
  connectionTokensOf,
  BODY_CHUNKED,
  BODY_CLOSE,
  BODY_LENGTH,
  BODY_NONE,
  lastChunk,
  serializeResponseHead,
  type BodyKind,
  type ResponseFacts,
  type Headers,
} from "./head.js";
import type { RawHead } from "./internal/parser.js";
import { T_BODY } from "./internal/phases.js";
import { DRAIN_LIMIT, ResponseDrain } from "./response-drain.js";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
const QUEUE_HIGH_WATER = 64 * 1024;
/**
 * Response bytes queued on the client socket before the upstream is paused. Not the socket's
 * own 16 KiB mark: one 64 KiB read already passes that while the client is corked until the
 * check phase, and pausing there left the rest of a response read in the same turn for a
 * second syscall.
 */
const CLIENT_HIGH_WATER = 128 * 1024;
const CRLF = "\r\n";

export function onResponseHead(ex: Exchange, h: RawHead): BodyKind {
  const status = h.statusCode;
  if (status < 200) {
    if (status === 101) {
      if (!ex.facts.upgrade) throw new HttpParseError(502, "101 for a request that did not ask to upgrade");
      ex.upgrading = true;
      ex.resHead = h;
      ex.up!.framer.stop = true;
      return BODY_NONE;
    }
    ex.interim = true;
    const relay100 = status !== 100 || (ex.facts.expectContinue && !ex.answered100);
    if (!ex.facts.http10 && relay100 && !ex.headWritten) {
      ex.downStarted = true;
      ex.session.socket.write(
        serializeResponseHead(status, h.statusMessage, h.headers, { framing: BODY_NONE, close: false, keepAliveHeader: false, upgrade: false, connectionTokens: connectionTokensOf(h.headers), keepLength: false }),
        "latin1",
      );
    }
    return BODY_NONE;
  }
  const rf = analyzeResponse(h, ex.method);
  ex.rf = rf;
  ex.resHead = h;
  ex.resHeadSeen = true;
  ex.session.deadline.set(ex.ropts!.bodyTimeout, T_BODY);
  if (ex.runtime.proxy.hooks.onUpstreamResponse.isUsed()) {
    runResponseHook(ex, h, rf);
    return rf.bodyKind;
  }
  ex.writeResponseHead(status, h.statusMessage, h.headers, rf, "");
  return rf.bodyKind;
}

export function writeResponseHead(ex: Exchange, status: number, message: string | undefined, headers: Headers, rf: ResponseFacts, extra: string): void {
  const f = ex.facts;
  const bodyPending = !ex.requestComplete && f.bodyKind !== BODY_NONE;
  // a 1xx in the final response's place (a tap's choice): no final response follows, so the
  // client would take its next response for this request's: close after it
  let close = !ex.session.keepAlive || bodyPending || status < 200;
  let framing = rf.bodyKind;
  if (framing === BODY_CHUNKED || framing === BODY_CLOSE) {
    if (f.http10) {
      framing = BODY_CLOSE;
      close = true;
    } else framing = BODY_CHUNKED;
  }
  ex.downChunked = framing === BODY_CHUNKED;
  ex.closeAfter = close;
  if (bodyPending) {
    // an early response: the rest of the request body is dropped and the connection closes
    ex.discardBody = true;
    ex.session.closing = true;
  }
  ex.downStarted = true;
  ex.headWritten = true;
  let s = serializeResponseHead(status, message, headers, {
    framing,
    close,
    keepAliveHeader: f.http10 && !close,
    upgrade: false,
    connectionTokens: rf.connectionTokens,
    // RFC 9110 §8.6: never a Content-Length on a 204 or 1xx (a sloppy upstream's would desync clients)
    keepLength: (framing === BODY_LENGTH || framing === BODY_NONE) && status !== 204 && status >= 200,
    contentLength: rf.contentLength,
  });
  if (extra !== "") s = s.slice(0, -2) + extra + CRLF;
  ex.session.socket.write(s, "latin1");
}

/**
 * A tap turned the response into one that carries no body (204, 304, 1xx): the head goes down
 * alone and the exchange is over for the client. Body bytes already held are dropped; the rest
 * is drained in the background when the socket could be reused, otherwise the socket closes.
 */
export function writeBodiless(ex: Exchange, status: number, message: string | undefined, headers: Headers, rf: ResponseFacts): void {
  ex.writeResponseHead(status, message, headers, { ...rf, bodyKind: BODY_NONE }, "");
  if (!ex.upDone) ex.resStream?.destroy();
  // every body byte read so far counts against the drain, held or already given to a tap
  const held = ex.resHookedBytes;
  ex.resHold = undefined;
  ex.resHoldBytes = 0;
  ex.resStream = undefined;
  ex.hooked = false;
  ex.endDown();
  if (!ex.upDone && ex.ps !== undefined) drainUpstream(ex, rf, held);
  ex.maybeFinish();
}

function drainUpstream(ex: Exchange, rf: ResponseFacts, held: number): void {
  const up = ex.up!;
  // a sync tap decides inside the framer's onHead: stop it there, onUpstreamData hands the
  // rest of the chunk to the drain (and a dropped socket's framer is never run again)
  up.framer.stop = true;
  const drainable = rf.reusable && ex.upstreamDone && !ex.runtime.proxy.closing && rf.bodyKind !== BODY_CLOSE && rf.contentLength <= DRAIN_LIMIT;
  if (!drainable) return ex.dropUpstream();
  const ps = ex.ps!;
  ex.ps = undefined;
  ex.up = undefined;
  ex.upstreamPaused = false;
  new ResponseDrain(ps, up, ex.runtime.proxy, held, ex.ropts!.bodyTimeout);
}

export function onResponseBody(ex: Exchange, chunk: Buffer): void {
  ex.session.deadline.set(ex.ropts!.bodyTimeout, T_BODY);
  const hold = ex.resHold;
  if (hold !== undefined) {
    hold.push(chunk);
    ex.resHoldBytes += chunk.length;
    ex.resHookedBytes += chunk.length;
    if (ex.resHoldBytes > QUEUE_HIGH_WATER) ex.pauseUpstream();
    return;
  }
  const rs = ex.resStream;
  if (rs !== undefined) {
    ex.resHookedBytes += chunk.length;
    if (!rs.push(chunk)) ex.pauseUpstream();
    return;
  }
  ex.writeDown(chunk);
  if (ex.session.socket.writableLength > CLIENT_HIGH_WATER) ex.pauseUpstream();
}

export function writeDown(ex: Exchange, chunk: Buffer): boolean {
  const client = ex.session.socket;
  if (ex.downChunked) {
    client.write(chunk.length.toString(16) + CRLF, "latin1");
    client.write(chunk);
    return client.write(CRLF, "latin1");
  }
  return client.write(chunk);
}

export function onResponseComplete(ex: Exchange): void {
  if (ex.interim) {
    ex.interim = false;
    return;
  }
  if (ex.upgrading) return;
  ex.upDone = true;
  ex.up!.framer.stop = true;
  if (ex.hooked) {
    ex.resStream?.push(null);
    return;
  }
  ex.endDown();
}

export function endDown(ex: Exchange): void {
  if (ex.downDone) return;
  if (ex.downChunked) ex.session.socket.write(lastChunk(ex.resTrailers), "latin1");
  ex.downDone = true;
}

export function onUpstreamEnd(ex: Exchange): void {
  const up = ex.up;
  if (up !== undefined && up.framer.closeDelimited) {
    const client = ex.session.socket;
    client.cork();
    up.framer.finish();
    client.uncork();
    ex.releaseUpstream(false);
    return ex.maybeFinish();
  }
  ex.upstreamLost();
}

/** The upstream socket ended or failed in the middle of this exchange. */
export function upstreamLost(ex: Exchange): void {
  ex.dropUpstream();
  if (ex.aborted || ex.finished) return;
  if (!ex.resHeadSeen && !ex.upgrading) {
    if (ex.reused && !ex.staleRetried && !ex.downStarted && ex.replayable && IDEMPOTENT.has(ex.method)) {
      // a stale keep-alive socket: resend once on a fresh connection
      ex.staleRetried = true;
      ex.forceFresh = true;
      return ex.retry(0, false);
    }
    return ex.upstreamFailed(new UpstreamResetError("upstream closed the connection before responding"), true);
  }
  if (ex.upDone) return ex.maybeFinish();
  ex.resStream?.destroy(new UpstreamResetError("upstream closed mid-response"));
  if (!ex.headWritten) return ex.respondError(502, new UpstreamResetError("upstream closed mid-response"));
  ex.runtime.proxy.logger.info("upstream closed mid-response", { id: ex.id });
  ex.conn.destroy("upstream-closed");
}

export function startTunnel(ex: Exchange, rest: Buffer): void {
  const ps = ex.ps!;
  const h = ex.resHead!;
  ex.ps = undefined;
  ex.up!.ex = undefined;
  ex.up = undefined;
  ex.finished = true;
  if (ex.requestTimer !== undefined) clearTimeout(ex.requestTimer);
  if (ex.continueTimer !== undefined) clearTimeout(ex.continueTimer);
  const upstream = ps.pool.detach(ps);
  const client = ex.session.socket;
  client.write(
    serializeResponseHead(101, h.statusMessage, h.headers, { framing: BODY_NONE, close: false, keepAliveHeader: false, upgrade: true, connectionTokens: connectionTokensOf(h.headers), keepLength: false }),
    "latin1",
  );
  const pending = ex.session.detachForTunnel();
  if (rest.length > 0) client.write(rest);
  upstream.resume();
  relay(ex.conn, upstream, {
    idleMs: ex.runtime.proxy.timeoutsFor(ex.conn).idle,
    head: pending === undefined ? undefined : [pending],
    clientEnded: ex.session.clientEnded,
  });
}
