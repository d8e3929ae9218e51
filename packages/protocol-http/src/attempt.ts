/**
 * One try of an exchange upstream: a socket leased from its pool (or dialled for it), the
 * request written on that socket, and what came back on it: the response head and its facts,
 * trailers, and the body held while `onUpstreamResponse` taps decide. A retry gives the
 * exchange a new Attempt; the old one has given its socket back (or closed it) by then, and a
 * late pool answer for it finds it replaced.
 *
 * The Attempt owns this state. The exchange (its `AttemptOwner`) reads it through getters and
 * changes it only through the methods here; the Attempt reports what happened on the socket
 * through the owner's methods. The pooled socket itself belongs to the pool: the Attempt leases
 * it and gives it back (`release`), closes it (`drop`), or hands it on (`drain`, `detach`).
 */
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import type { Target } from "@switchyard/core";
import { HttpParseError } from "./errors-response.js";
import { BODY_NONE, type BodyKind } from "./body-kind.js";
import { analyzeResponse, lastChunk, type ResponseFacts } from "./head.js";
import { Framer, type FramerHandler, type FramerLimits, type RawHead } from "./internal/parser.js";
import { ownBytes, type PooledSocket, type PoolWaiter, type SocketOwner, type TargetPool } from "./pool.js";
import { ResponseDrain, type ResponseSink } from "./response-drain.js";

const RESPONSE_LIMITS: FramerLimits = { maxHeaderSize: 64 * 1024, maxHeaderCount: 512, maxUrlLength: 0, strict: false };
/** response body bytes held for taps before the upstream is paused */
const HOLD_HIGH_WATER = 64 * 1024;
const CRLF = "\r\n";

/** Per upstream socket (kept on it across requests): its response framer and who hears it. */
export class UpstreamState implements FramerHandler {
  readonly framer: Framer;
  sink: ResponseSink | undefined;
  constructor() {
    this.framer = new Framer("response", this, RESPONSE_LIMITS);
  }
  onHead(head: RawHead): BodyKind {
    return this.sink!.onResponseHead(head);
  }
  onBody(chunk: Buffer): void {
    this.sink!.onResponseBody(chunk);
  }
  onTrailers(trailers: string[]): void {
    this.sink!.onResponseTrailers(trailers);
  }
  onComplete(): void {
    this.sink!.onResponseComplete();
  }
}

/** The client side a response goes to: corked while upstream bytes are framed. */
export interface ClientSide {
  readonly socket: Socket;
  /** the client socket is corked until the event loop's check phase */
  corkedUntilCheck: boolean;
}

/** What an Attempt reports to (the exchange). Every call names the attempt it is about. */
export interface AttemptOwner {
  readonly client: ClientSide;
  /** the attempt is the exchange's current one and the exchange still wants a socket */
  wants(a: Attempt): boolean;
  /** opens a new socket to the target (the owner knows timeouts and the SSRF guard) */
  dialUpstream(a: Attempt): Promise<Socket>;
  /** a socket is leased: send the request */
  attemptReady(a: Attempt): void;
  /** no socket, or the response cannot be read */
  attemptFailed(a: Attempt, err: Error, requestSent: boolean): void;
  /** a handler threw on an asynchronous path (a bug) */
  crashed(err: unknown): void;
  /** a 1xx other than 101 */
  interimResponse(a: Attempt, head: RawHead): void;
  /** the final response head (facts on the attempt) */
  responseHead(a: Attempt): void;
  /** a body slice the attempt does not hold for taps (owned bytes) */
  responseBody(a: Attempt, chunk: Buffer): void;
  /** the response's end was read, and nothing holds the body for taps */
  responseComplete(a: Attempt): void;
  /** the response was read whole; `clean`: no byte followed it */
  responseRead(a: Attempt, clean: boolean): void;
  /** the socket ended or closed in the middle of the exchange */
  upstreamLost(a: Attempt): void;
  /** a 101 was read: `rest` are the bytes after it */
  upgraded(a: Attempt, rest: Buffer): void;
  /** the upstream socket drained its write buffer */
  upstreamDrained(): void;
}

export class Attempt implements PoolWaiter, SocketOwner, ResponseSink {
  readonly target: Target;
  readonly #owner: AttemptOwner;
  readonly #pool: TargetPool;
  readonly #proxy: { readonly closing: boolean };
  /** the method the response answers (HEAD: no body) */
  readonly #method: string;
  /** the request asked to upgrade (a 101 is acceptable) */
  readonly #upgrade: boolean;
  /** the client speaks HTTP/1.0: no Transfer-Encoding may go down (RFC 9112 §6.1) */
  readonly #http10: boolean;
  #ps: PooledSocket | undefined = undefined;
  #up: UpstreamState | undefined = undefined;
  #reused = false;
  #sent = false;
  #requestDone = false;
  #paused = false;
  #interim = false;
  #headSeen = false;
  #head: RawHead | undefined = undefined;
  #facts: ResponseFacts | undefined = undefined;
  #trailers: string[] | undefined = undefined;
  #complete = false;
  #upgrading = false;
  /** the response goes through onUpstreamResponse taps (they decide when it goes down) */
  #hooked = false;
  /** body chunks held while taps run, unless a tap opened `body` (then #stream) */
  #hold: Buffer[] | undefined = undefined;
  #holdBytes = 0;
  #stream: Readable | undefined = undefined;
  /** body bytes read while hooked, held or pushed to a tap's stream (what a drain has spent) */
  #hookedBytes = 0;
  /** measure sentAt / firstByteAt (someone listens for the access-log record) */
  readonly #timed: boolean;
  /** performance.now() when the request head was written, and when the first response byte came (if timed) */
  sentAt = 0;
  firstByteAt = 0;

  constructor(
    owner: AttemptOwner,
    target: Target,
    pool: TargetPool,
    proxy: { readonly closing: boolean },
    method: string,
    upgrade: boolean,
    http10: boolean,
    timed: boolean,
  ) {
    this.#http10 = http10;
    this.#timed = timed;
    this.#owner = owner;
    this.target = target;
    this.#pool = pool;
    this.#proxy = proxy;
    this.#method = method;
    this.#upgrade = upgrade;
  }

  // ---- what the exchange reads ---------------------------------------------------------------

  /** a socket is leased */
  get hasSocket(): boolean {
    return this.#ps !== undefined;
  }
  /** the socket served requests before this one */
  get reused(): boolean {
    return this.#reused;
  }
  /** the request head was written */
  get sent(): boolean {
    return this.#sent;
  }
  /** the whole request was written */
  get requestDone(): boolean {
    return this.#requestDone;
  }
  /** a 1xx is being read */
  get interim(): boolean {
    return this.#interim;
  }
  /** the final response head was read */
  get headSeen(): boolean {
    return this.#headSeen;
  }
  get head(): RawHead | undefined {
    return this.#head;
  }
  get facts(): ResponseFacts | undefined {
    return this.#facts;
  }
  get trailers(): string[] | undefined {
    return this.#trailers;
  }
  /** the response's end was read */
  get complete(): boolean {
    return this.#complete;
  }
  get upgrading(): boolean {
    return this.#upgrading;
  }
  get hooked(): boolean {
    return this.#hooked;
  }
  /** the stream a tap opened on the response body */
  get stream(): Readable | undefined {
    return this.#stream;
  }
  /** the response may leave its socket for the next request: framed, persistent, request written */
  get reusable(): boolean {
    return this.#facts !== undefined && this.#facts.reusable && this.#requestDone;
  }
  /** request bytes wait in the socket's buffer */
  get unwritten(): boolean {
    return this.#ps !== undefined && this.#ps.socket.writableLength > 0;
  }

  // ---- the socket -----------------------------------------------------------------------------

  /** Leases a socket: now (then the owner hears attemptReady) or later (the pool calls back). */
  acquire(fresh: boolean): void {
    let ps: PooledSocket | undefined;
    try {
      ps = this.#pool.acquire(this, fresh);
    } catch (err) {
      return this.#owner.attemptFailed(this, err as Error, false);
    }
    if (ps !== undefined) this.poolReady(ps, false);
  }

  /** No longer waiting in the pool's queue (the client went away). */
  cancel(): void {
    this.#pool.cancel(this);
  }

  /** @internal PoolWaiter */
  poolReady(ps: PooledSocket, fresh: boolean): void {
    if (!this.#owner.wants(this)) {
      ps.pool.release(ps, !this.#proxy.closing);
      return;
    }
    this.#ps = ps;
    this.#reused = !fresh;
    ps.owner = this;
    let up = ps.state as UpstreamState | undefined;
    if (up === undefined) {
      up = new UpstreamState();
      ps.state = up;
    }
    up.sink = this;
    this.#up = up;
    up.framer.expect(this.#method);
    this.#owner.attemptReady(this);
  }

  /** @internal PoolWaiter */
  poolFailed(err: Error): void {
    if (this.#owner.wants(this)) this.#owner.attemptFailed(this, err, false);
  }

  /** @internal PoolWaiter */
  crashed(err: unknown): void {
    this.#owner.crashed(err);
  }

  /** @internal PoolWaiter */
  dialNew(): Promise<Socket> {
    return this.#owner.dialUpstream(this);
  }

  /** Gives the socket back to its pool (`reusable` false closes it). */
  release(reusable: boolean): void {
    const ps = this.#ps;
    if (ps === undefined) return;
    this.#ps = undefined;
    this.#up!.sink = undefined;
    this.#up = undefined;
    if (this.#paused) {
      this.#paused = false;
      ps.socket.resume();
    }
    ps.pool.release(ps, reusable);
  }

  /** Closes the socket without reuse. */
  drop(): void {
    const ps = this.#ps;
    if (ps === undefined) return;
    this.#ps = undefined;
    const up = this.#up!;
    up.sink = undefined;
    up.framer.reset();
    this.#up = undefined;
    ps.pool.discard(ps);
  }

  /**
   * Leaves the rest of the response body (read so far: `held` bytes) to a ResponseDrain, which
   * gives the socket back once the body's end is read. The framer stops at once.
   */
  drain(held: number, idleMs: number): void {
    const ps = this.#ps!;
    const up = this.#up!;
    this.#ps = undefined;
    this.#up = undefined;
    this.#paused = false;
    new ResponseDrain(ps, up, this.#proxy, held, idleMs);
  }

  /** Stops the framer where it is (onUpstreamData hands what follows to a drain, or drops it). */
  stopFraming(): void {
    if (this.#up !== undefined) this.#up.framer.stop = true;
  }

  /** Takes the socket out of the pool for good (a tunnel after a 101). */
  detach(): Socket {
    const ps = this.#ps!;
    this.#ps = undefined;
    this.#up!.sink = undefined;
    this.#up = undefined;
    return ps.pool.detach(ps);
  }

  pause(): void {
    if (this.#ps !== undefined && !this.#paused) {
      this.#paused = true;
      this.#ps.socket.pause();
    }
  }

  resume(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#ps?.socket.resume();
    }
  }

  // ---- the request ----------------------------------------------------------------------------

  /** Writes the request head, corked: the body the owner writes next leaves with it (uncork). */
  writeHead(head: string): void {
    const sock = this.#ps!.socket;
    sock.cork();
    sock.write(head, "latin1");
    this.#sent = true;
    if (this.#timed) this.sentAt = performance.now();
  }

  uncork(): void {
    this.#ps?.socket.uncork();
  }

  /** Writes a body slice (re-chunked for a chunked request); false when the socket is full. */
  writeBody(chunk: Buffer, chunked: boolean): boolean {
    const sock = this.#ps!.socket;
    if (chunked) {
      sock.write(chunk.length.toString(16) + CRLF, "latin1");
      sock.write(chunk);
      return sock.write(CRLF, "latin1");
    }
    return sock.write(chunk);
  }

  /** The request is written whole (the last chunk and trailers of a chunked one). */
  finishRequest(chunked: boolean, trailers: string[] | undefined): void {
    if (chunked) this.#ps!.socket.write(lastChunk(trailers), "latin1");
    this.#requestDone = true;
  }

  // ---- the response ---------------------------------------------------------------------------

  /** @internal SocketOwner: bytes read (a shared-buffer slice for onread sockets: see ownBytes) */
  onUpstreamData(chunk: Buffer): void {
    const up = this.#up!;
    const ps = this.#ps!;
    const session = this.#owner.client;
    const client = session.socket;
    if (this.#timed && this.firstByteAt === 0) this.firstByteAt = performance.now();
    if (!session.corkedUntilCheck) client.cork();
    const n = up.framer.execute(chunk);
    // More of this response may already be read in this turn of the event loop (a 64 KiB body
    // arrives as several reads): the client stays corked until the loop's check phase so those
    // slices leave in one writev. A finished response (or anything else) goes out at once.
    if (n >= 0 && !this.#complete && this.#ps !== undefined && !this.#upgrading && !client.destroyed) {
      if (!session.corkedUntilCheck) {
        session.corkedUntilCheck = true;
        setImmediate(uncorkAfterReads, session);
      }
    } else {
      session.corkedUntilCheck = false;
      client.uncork();
    }
    if (n < 0) return this.#owner.attemptFailed(this, up.framer.error!, true);
    if (this.#ps === undefined) {
      // a tap made the response bodiless inside its head: the drain reads the rest
      if (ps.owner instanceof ResponseDrain && n < chunk.length) ps.owner.onUpstreamData(chunk.subarray(n));
      return;
    }
    if (this.#upgrading) return this.#owner.upgraded(this, ownBytes(chunk.subarray(n)));
    if (this.#complete) this.#owner.responseRead(this, n === chunk.length);
  }

  /** @internal SocketOwner */
  onUpstreamEnd(): void {
    const up = this.#up;
    if (up !== undefined && up.framer.closeDelimited) {
      const client = this.#owner.client.socket;
      client.cork();
      up.framer.finish();
      client.uncork();
      return this.#owner.responseRead(this, false);
    }
    this.#owner.upstreamLost(this);
  }

  /** @internal SocketOwner */
  onUpstreamClose(): void {
    this.#owner.upstreamLost(this);
  }

  /** @internal SocketOwner */
  onUpstreamDrain(): void {
    this.#owner.upstreamDrained();
  }

  /** @internal ResponseSink (the framer) */
  onResponseHead(h: RawHead): BodyKind {
    const status = h.statusCode;
    if (status < 200) {
      if (status === 101) {
        if (!this.#upgrade) throw new HttpParseError(502, "101 for a request that did not ask to upgrade");
        this.#upgrading = true;
        this.#head = h;
        this.#up!.framer.stop = true;
        return BODY_NONE;
      }
      this.#interim = true;
      this.#owner.interimResponse(this, h);
      return BODY_NONE;
    }
    const rf = analyzeResponse(h, this.#method);
    if (this.#http10 && rf.codings !== undefined && rf.bodyKind !== BODY_NONE) {
      // the proxy does not decode transfer codings, and an HTTP/1.0 client cannot be told of them
      throw new HttpParseError(502, `Transfer-Encoding ${rf.codings} from upstream for an HTTP/1.0 client`);
    }
    this.#facts = rf;
    this.#head = h;
    this.#headSeen = true;
    this.#owner.responseHead(this);
    return rf.bodyKind;
  }

  /** @internal ResponseSink */
  onResponseBody(chunk: Buffer): void {
    // a slice of the upstream read buffer lives only until this read returns; the body is kept
    // longer (queued on the client socket, held or streamed for taps)
    this.#owner.responseBody(this, ownBytes(chunk));
  }

  /** @internal ResponseSink */
  onResponseTrailers(trailers: string[]): void {
    this.#trailers = trailers;
  }

  /** @internal ResponseSink */
  onResponseComplete(): void {
    if (this.#interim) {
      this.#interim = false;
      return;
    }
    if (this.#upgrading) return;
    this.#complete = true;
    this.#up!.framer.stop = true;
    if (this.#hooked) {
      this.#stream?.push(null);
      return;
    }
    this.#owner.responseComplete(this);
  }

  // ---- the body held for taps -----------------------------------------------------------------

  /** The response goes through taps: its body is held (`hasBody`) until they decide. */
  holdForTaps(hasBody: boolean): void {
    this.#hooked = true;
    if (hasBody) this.#hold = [];
  }

  /** Keeps a body slice for taps (held, or pushed to the stream a tap opened); false when not hooked. */
  holdBody(chunk: Buffer): boolean {
    const hold = this.#hold;
    if (hold !== undefined) {
      hold.push(chunk);
      this.#holdBytes += chunk.length;
      this.#hookedBytes += chunk.length;
      if (this.#holdBytes > HOLD_HIGH_WATER) this.pause();
      return true;
    }
    const rs = this.#stream;
    if (rs !== undefined) {
      this.#hookedBytes += chunk.length;
      if (!rs.push(chunk)) this.pause();
      return true;
    }
    return false;
  }

  /** A tap read `res.body` of this response (HttpResponse's BodyOpener): from now on it flows through a Readable. */
  openResponseBody(): Readable {
    const body = new Readable({ highWaterMark: 64 * 1024, read: () => this.resume() });
    // the exchange handles an upstream failure itself: a tap holding the stream without an
    // 'error' listener (or only having opened it) must not turn it into an uncaught exception
    body.on("error", noop);
    for (const c of this.#hold ?? []) body.push(c);
    this.#hold = undefined;
    this.#holdBytes = 0;
    if (this.#complete) body.push(null);
    this.#stream = body;
    return body;
  }

  /** Taps are done and nobody opened the body: what was held goes down, the rest directly. */
  takeHeld(): Buffer[] | undefined {
    const held = this.#hold;
    this.#hold = undefined;
    this.#holdBytes = 0;
    this.#hooked = false;
    return held;
  }

  /** The body goes nowhere (a tap made the response bodiless): returns the body bytes read so far. */
  dropBody(): number {
    if (!this.#complete) this.#stream?.destroy();
    const read = this.#hookedBytes;
    this.#hold = undefined;
    this.#holdBytes = 0;
    this.#stream = undefined;
    this.#hooked = false;
    return read;
  }

  /** Fails the stream a tap opened (the upstream went away, the client went away). */
  failStream(err?: Error): void {
    this.#stream?.destroy(err);
  }
}

function uncorkAfterReads(session: ClientSide): void {
  if (!session.corkedUntilCheck) return;
  session.corkedUntilCheck = false;
  session.socket.uncork();
}

function noop(): void {}

