/**
 * A downstream HTTP/1.x connection: reads request heads with the framer, runs one exchange at a
 * time (pipelined requests wait, unparsed, until the current response is written — so answers
 * keep their order and read-ahead stays at one socket chunk), keeps the connection alive,
 * honours `Connection: close`, and closes gracefully (end, linger, destroy).
 */
import type { Socket } from "node:net";
import { onSocketEnd, type Connection } from "@switchyard/core";
import { errorResponse, type HttpParseError } from "./errors-response.js";
import { Exchange, type ExchangeSession } from "./exchange.js";
import type { BodyKind } from "./body-kind.js";
import { analyzeRequest } from "./head.js";
import { Deadline, type DeadlineOwner } from "./internal/deadline.js";
import { T_HEADERS, T_KEEPALIVE } from "./internal/phases.js";
import type { Framer, FramerHandler, RawHead } from "./internal/parser.js";
import type { ResolvedListenerOptions } from "./options.js";
import type { ProtocolRuntime } from "./runtime.js";


/** How long an idle keep-alive session waits for a request already on its way once the proxy drains. */
const DRAIN_GRACE_MS = 1000;

// Client socket events go to shared handlers (no closures per connection): they find their
// session through one symbol property on the socket, like core's relay does.
const kSession = Symbol("switchyard.http.session");
type SessionSocket = Socket & { [kSession]: Session };

function onClientData(this: SessionSocket, chunk: Buffer): void {
  this[kSession].onData(chunk);
}

function onClientEnd(this: SessionSocket): void {
  this[kSession].onEnd();
}

function onClientDrain(this: SessionSocket): void {
  this[kSession].exchange?.onClientDrain();
}

function onClientClose(conn: Connection): void {
  (conn.socket as SessionSocket)[kSession].clientClosed();
}

function onConnectionDestroyed(_reason: unknown, conn: Connection): void {
  (conn.socket as SessionSocket)[kSession].destroyed();
}

function onConnectionDrain(conn: Connection): void {
  (conn.socket as SessionSocket)[kSession].drain();
}

export class Session implements FramerHandler, DeadlineOwner, ExchangeSession {
  /** the client socket is corked until the event loop's check phase (attempt.ts) */
  corkedUntilCheck = false;
  readonly conn: Connection;
  readonly socket: Socket;
  readonly runtime: ProtocolRuntime;
  readonly opts: ResolvedListenerOptions;
  /** taken from the runtime to read a request, handed back while the connection is idle */
  framer: Framer | undefined = undefined;
  readonly deadline: Deadline;
  exchange: Exchange | undefined;
  requests = 0;
  /** no further request will be read; close after the current exchange */
  closing = false;
  /** we ended our side (graceful close in progress) */
  ended = false;
  clientEnded = false;
  #pending: Buffer | undefined;
  #parsing = false;
  #awaitingHead = false;
  #tunnel = false;

  constructor(conn: Connection, runtime: ProtocolRuntime, opts: ResolvedListenerOptions) {
    this.conn = conn;
    this.socket = conn.socket;
    this.runtime = runtime;
    this.opts = opts;
    this.deadline = new Deadline(runtime.deadlines, this);
  }

  start(): void {
    const socket = this.socket as SessionSocket;
    const conn = this.conn;
    socket[kSession] = this;
    socket.on("data", onClientData);
    onSocketEnd(socket, onClientEnd);
    socket.on("drain", onClientDrain);
    conn.onDestroy(onConnectionDestroyed);
    conn.onDrain(onConnectionDrain);
    conn.onClientClose(onClientClose);
    conn.setState("established");
    this.#awaitingHead = true;
    this.deadline.set(this.opts.headersTimeout, T_HEADERS);
  }

  /** keep-alive still possible after the current exchange */
  get keepAlive(): boolean {
    return !this.closing && !this.conn.draining && !this.clientEnded;
  }

  /** No further request is read: the connection closes after the current exchange. */
  stopReading(): void {
    this.closing = true;
  }

  /** @internal the client socket closed */
  clientClosed(): void {
    this.conn.destroy(this.ended || (this.exchange === undefined && this.#framerIdle) ? "done" : "client-closed");
  }

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.ended || this.#tunnel) return;
    if (this.#pending !== undefined) {
      this.#pending = Buffer.concat([this.#pending, chunk]);
      this.socket.pause();
      return;
    }
    const ex = this.exchange;
    if (ex !== undefined && ex.requestComplete) {
      this.#pending = chunk;
      this.socket.pause();
      return;
    }
    if (!this.#awaitingHead && ex === undefined) {
      this.#awaitingHead = true;
      this.deadline.set(this.opts.headersTimeout, T_HEADERS);
    }
    this.#parse(chunk);
  }

  /** nothing of a request read (a released framer is idle) */
  get #framerIdle(): boolean {
    return this.framer === undefined || this.framer.idle;
  }

  #parse(buf: Buffer): void {
    const framer = (this.framer ??= this.runtime.takeFramer(this, this.opts.requestLimits));
    let off = 0;
    for (;;) {
      this.#parsing = true;
      const n = framer.execute(buf, off);
      this.#parsing = false;
      if (n < 0) return this.#parseFailed(framer.error!);
      off += n;
      if (this.conn.destroyed || this.ended || this.#tunnel) return;
      if (off >= buf.length) return;
      if (this.exchange === undefined && !this.closing) {
        // the exchange finished while we were parsing: the next request can start
        this.#awaitingHead = true;
        this.deadline.set(this.opts.headersTimeout, T_HEADERS);
        continue;
      }
      this.#pending = buf.subarray(off);
      this.socket.pause();
      return;
    }
  }

  onHead(head: RawHead): BodyKind {
    this.#awaitingHead = false;
    if (this.requests === 0) this.conn.clearTimer("handshake");
    this.deadline.clear();
    const facts = analyzeRequest(head, this.opts.normalizePath);
    this.requests++;
    const max = this.opts.maxRequestsPerConnection;
    if (!facts.keepAlive || (max > 0 && this.requests >= max)) this.closing = true;
    const ex = new Exchange(this, head, facts);
    this.exchange = ex;
    ex.start();
    return facts.bodyKind;
  }

  onBody(chunk: Buffer): void {
    this.exchange?.requestBody(chunk);
  }

  onTrailers(trailers: string[]): void {
    this.exchange?.requestTrailers(trailers);
  }

  onComplete(): void {
    this.framer!.stop = true;
    this.exchange?.requestEnd();
  }

  /** The exchange wrote its whole response (and read its whole request, unless `reuse` is false). */
  exchangeDone(ex: Exchange, reuse: boolean): void {
    if (this.exchange !== ex) return;
    this.exchange = undefined;
    if (this.conn.destroyed) return;
    if (!reuse || this.closing || this.conn.draining) return this.closeGracefully();
    if (this.#parsing) return; // #parse continues with the rest of its buffer
    const pending = this.#pending;
    this.#pending = undefined;
    this.socket.resume();
    if (pending !== undefined) {
      this.#awaitingHead = true;
      this.deadline.set(this.opts.headersTimeout, T_HEADERS);
      return this.#parse(pending);
    }
    if (this.clientEnded) return this.closeGracefully();
    // idle until the next request: the framer goes back to the runtime meanwhile
    const framer = this.framer;
    if (framer !== undefined && framer.idle) {
      this.framer = undefined;
      this.runtime.releaseFramer(framer);
    }
    this.deadline.set(this.opts.keepAliveTimeout, T_KEEPALIVE);
  }

  /** Ends our side after the last response; the client's close (or the linger timer) finishes. */
  closeGracefully(): void {
    if (this.ended || this.conn.destroyed) return;
    this.ended = true;
    this.closing = true;
    this.deadline.dispose();
    this.#pending = undefined;
    const socket = this.socket;
    socket.end();
    socket.resume();
    if (this.clientEnded) return;
    this.conn.timer("linger", this.opts.lingerTimeout, () => this.conn.destroy("done"));
  }

  /** Writes a complete error response for a request that never reached an exchange, then closes. */
  #reject(status: number, detail: string): void {
    const id = `${this.conn.id}.${this.requests + 1}`;
    this.runtime.context.logger.info("bad request", { id, status, error: detail });
    // a HEAD's answer has no body, even this one: the request line may have been read
    if (!this.socket.destroyed) this.socket.write(errorResponse(status, id, true, this.opts.errorBodies, this.framer?.requestMethod === "HEAD"));
    this.closeGracefully();
  }

  #parseFailed(err: HttpParseError): void {
    const ex = this.exchange;
    if (ex !== undefined) return ex.clientFailed(err);
    this.#reject(err.status, err.message);
  }

  /** @internal */
  onEnd(): void {
    this.clientEnded = true;
    if (this.ended || this.#tunnel) return;
    // like nginx: a client FIN while a request is in flight (or half-read) is an abort
    if (this.exchange !== undefined || this.#pending !== undefined || !this.#framerIdle) {
      return this.conn.destroy("client-closed");
    }
    this.closeGracefully();
  }

  /**
   * @internal the proxy is closing gracefully. A busy session answers its current request with
   * `Connection: close`. An idle one cannot tell its client to stop (HTTP/1.1 has no such
   * message): the client may have sent its next request already, and a FIN now would drop it.
   * So it waits up to DRAIN_GRACE_MS (at most its keep-alive timeout) for a request on its way,
   * answers it with `Connection: close`, and closes when none came.
   */
  drain(): void {
    if (this.#tunnel || this.ended) return;
    this.closing = true;
    if (this.exchange !== undefined || !this.#framerIdle || this.#pending !== undefined) return;
    const keepAlive = this.opts.keepAliveTimeout;
    // a byte that arrives re-arms the head deadline (onData): a request in progress is not cut
    this.#awaitingHead = false;
    this.deadline.set(keepAlive > 0 && keepAlive < DRAIN_GRACE_MS ? keepAlive : DRAIN_GRACE_MS, T_KEEPALIVE);
  }

  /** @internal the deadline expired */
  onDeadline(kind: number): void {
    if (this.conn.destroyed) return;
    if (kind === T_HEADERS) {
      if (this.exchange !== undefined) return;
      if (this.#framerIdle && this.requests > 0) return this.closeGracefully();
      return this.#reject(408, "request head not received in time");
    }
    if (kind === T_KEEPALIVE) {
      if (this.exchange === undefined && this.#framerIdle && this.#pending === undefined) this.closeGracefully();
      return;
    }
    this.exchange?.onTimeout(kind);
  }

  /** Hands the client socket to a byte tunnel (after a 101). Returns bytes read ahead. */
  detachForTunnel(): Buffer | undefined {
    this.#tunnel = true;
    this.exchange = undefined;
    this.deadline.dispose();
    const s = this.socket;
    s.removeAllListeners("data");
    s.removeAllListeners("end");
    s.removeAllListeners("drain");
    const pending = this.#pending;
    this.#pending = undefined;
    return pending;
  }

  pauseClient(): void {
    if (!this.ended && !this.socket.isPaused()) this.socket.pause();
  }

  resumeClient(): void {
    if (this.#pending === undefined && !this.#tunnel) this.socket.resume();
  }

  /** @internal the connection was destroyed */
  destroyed(): void {
    this.deadline.dispose();
    const ex = this.exchange;
    this.exchange = undefined;
    ex?.abort();
    this.runtime.connectionGone();
  }
}
