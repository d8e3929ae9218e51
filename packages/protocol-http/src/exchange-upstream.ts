/**
 * The upstream side of an exchange's socket: a pooled socket acquired (or dialed), the
 * per-socket response framer bound to the exchange, response bytes fed to it, and the socket
 * handed back to its pool (reusable) or discarded.
 */
import type { Socket } from "node:net";
import { dial } from "@switchyard/core";
import { HttpStatusError } from "./errors-response.js";
import type { BodyKind } from "./head.js";
import type { Exchange } from "./exchange.js";
import { Framer, type FramerHandler, type FramerLimits, type RawHead } from "./internal/parser.js";
import { ownBytes, UPSTREAM_ONREAD, type PooledSocket } from "./pool.js";
import { ResponseDrain, type ResponseSink } from "./response-drain.js";

const RESPONSE_LIMITS: FramerLimits = { maxHeaderSize: 64 * 1024, maxHeaderCount: 512, maxUrlLength: 0, strict: false };

/** Per upstream socket: its response framer, dispatching to the exchange (or drain) that owns it. */
export class UpstreamState implements FramerHandler {
  readonly framer: Framer;
  ex: ResponseSink | undefined;
  constructor() {
    this.framer = new Framer("response", this, RESPONSE_LIMITS);
  }
  onHead(head: RawHead): BodyKind {
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

export function connect(ex: Exchange): void {
  if (ex.aborted || ex.finished || ex.ps !== undefined) return; // answered, or an attempt holds a socket
  const target = ex.target;
  if (target === undefined) {
    return ex.respondError(503, new HttpStatusError(503, "PRX_ERR_HTTP_NO_TARGET", "route has no available target"));
  }
  ex.conn.target = target;
  ex.reused = false;
  const pool = ex.runtime.pools.get(target, ex.ropts!.pool, ex.route!.dynamic);
  let ps: PooledSocket | undefined;
  try {
    ps = pool.acquire(ex, ex.forceFresh);
  } catch (err) {
    return ex.upstreamFailed(err as Error, false);
  }
  if (ps !== undefined) ex.poolReady(ps, false);
}

export function dialNew(ex: Exchange): Promise<Socket> {
  const target = ex.target!;
  // half-open capable: a tunnel (after a 101) must keep carrying client bytes after the
  // upstream's FIN; pooled HTTP use destroys the socket on any 'end' (pool.ts, upstreamLost)
  // a pooled socket is the pool's, not the dialing connection's: other clients lease it too
  if (ex.route!.dynamic) {
    return ex.runtime.proxy.dial(ex.conn, target, true, { allowHalfOpen: true, onread: UPSTREAM_ONREAD, pooled: true, timeoutMs: ex.ropts!.connectTimeout });
  }
  return dial(target, { timeoutMs: ex.ropts!.connectTimeout, allowHalfOpen: true, onread: UPSTREAM_ONREAD });
}

export function poolReady(ex: Exchange, ps: PooledSocket, fresh: boolean): void {
  if (ex.aborted || ex.finished) {
    ps.pool.release(ps, !ex.runtime.proxy.closing);
    return;
  }
  ex.ps = ps;
  ex.reused = !fresh;
  ps.owner = ex;
  let up = ps.state as UpstreamState | undefined;
  if (up === undefined) {
    up = new UpstreamState();
    ps.state = up;
  }
  up.ex = ex;
  ex.up = up;
  up.framer.expect(ex.method);
  ex.sendRequest();
}

export function onUpstreamData(ex: Exchange, chunk: Buffer): void {
  const up = ex.up!;
  const ps = ex.ps!;
  const session = ex.session;
  const client = session.socket;
  if (!session.corkedUntilCheck) client.cork();
  const n = up.framer.execute(chunk);
  // More of this response may already be read in this turn of the event loop (a 64 KiB body
  // arrives as several reads): the client stays corked until the loop's check phase so those
  // slices leave in one writev. A finished response (or anything else) goes out at once.
  if (n >= 0 && !ex.upDone && ex.ps !== undefined && !ex.upgrading && !client.destroyed) {
    if (!session.corkedUntilCheck) {
      session.corkedUntilCheck = true;
      setImmediate(uncorkAfterReads, session);
    }
  } else {
    session.corkedUntilCheck = false;
    client.uncork();
  }
  if (n < 0) return ex.upstreamFailed(up.framer.error!, true);
  if (ex.ps === undefined) {
    // a tap made the response bodiless inside its head: the drain reads the rest
    if (ps.owner instanceof ResponseDrain && n < chunk.length) ps.owner.onUpstreamData(chunk.subarray(n));
    return;
  }
  if (ex.upgrading) return ex.startTunnel(ownBytes(chunk.subarray(n)));
  if (ex.upDone) {
    ex.releaseUpstream(n === chunk.length);
    ex.maybeFinish();
  }
}

export function releaseUpstream(ex: Exchange, clean: boolean): void {
  const ps = ex.ps;
  if (ps === undefined) return;
  ex.ps = undefined;
  if (ex.up !== undefined) ex.up.ex = undefined;
  ex.up = undefined;
  if (ex.upstreamPaused) {
    ex.upstreamPaused = false;
    ps.socket.resume();
  }
  const reusable = clean && ex.rf !== undefined && ex.rf.reusable && ex.upstreamDone && !ex.aborted && !ex.runtime.proxy.closing;
  ps.pool.release(ps, reusable);
}

/** Closes the current upstream socket without reuse. */
export function dropUpstream(ex: Exchange): void {
  const ps = ex.ps;
  if (ps === undefined) return;
  ex.ps = undefined;
  if (ex.up !== undefined) {
    ex.up.ex = undefined;
    ex.up.framer.reset();
  }
  ex.up = undefined;
  ps.pool.discard(ps);
}

function uncorkAfterReads(session: Exchange["session"]): void {
  if (!session.corkedUntilCheck) return;
  session.corkedUntilCheck = false;
  session.socket.uncork();
}
