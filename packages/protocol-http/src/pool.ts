/**
 * Keep-alive pools of upstream sockets, one per target: at most `maxSockets` open (busy,
 * connecting or idle), at most `maxIdle` idle, idle ones closed after `idleTimeout`, a bounded
 * queue of waiters with its own timeout (→ 503). Idle sockets are unref'd (they never keep the
 * process alive), dropped when they receive data or close, and checked again before reuse.
 * Socket listeners are attached once per socket and dispatch to the current owner.
 */
import type { OnReadOpts, Socket } from "node:net";
import { ShuttingDownError, type Target } from "@switchyard/core";
import { HttpStatusError } from "./errors-response.js";
import type { ResolvedPool } from "./options.js";

/** Who receives a busy socket's events. */
export interface SocketOwner {
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamClose(): void;
  onUpstreamDrain(): void;
}

/** Waits for a socket: exactly one of the two is called, unless the wait is cancelled. */
export interface PoolWaiter {
  poolReady(socket: PooledSocket, fresh: boolean): void;
  poolFailed(error: Error): void;
  /** a handler threw on the dial's asynchronous path (a bug): fail the request, not the process */
  crashed(error: unknown): void;
  /** opens a new socket to the target (the waiter knows timeouts and the SSRF guard) */
  dialNew(): Promise<Socket>;
}

// Plain TCP upstream sockets are dialed with Node's `onread`: every read lands in one buffer
// shared by all of them and reaches the owner as a slice of it, without a readable stream or a
// 64 KiB allocation per read. The slice is valid only until the owner returns: whatever keeps
// bytes (a body written to the client or held for taps, a tunnel's first bytes) takes a copy
// with `ownBytes`. Once a socket leaves the pool for a tunnel, its reads are copied into its
// stream (`detach`), so it works as an ordinary readable for the relay.
const READ_BUFFER = Buffer.from(new ArrayBuffer(64 * 1024));
const kPooled = Symbol("switchyard.http.pooled");
const kStreamReads = Symbol("switchyard.http.streamReads");
type UpstreamSocket = Socket & { [kPooled]?: PooledSocket | undefined; [kStreamReads]?: boolean };

function onUpstreamRead(this: UpstreamSocket, n: number): boolean {
  if (this[kStreamReads] === true) return this.push(Buffer.from(READ_BUFFER.subarray(0, n)));
  const ps = this[kPooled];
  if (ps === undefined) {
    // bytes before the pool took the socket: nobody asked for them
    this.destroy();
    return false;
  }
  ps.onData(READ_BUFFER.subarray(0, n));
  return true;
}

/** `onread` for the dialer (plain TCP targets; TLS sockets read as streams) */
export const UPSTREAM_ONREAD: OnReadOpts = { buffer: READ_BUFFER, callback: onUpstreamRead };

/** `chunk` itself, or a copy when it is a slice of the shared read buffer (kept past this read) */
export function ownBytes(chunk: Buffer): Buffer {
  return chunk.buffer === READ_BUFFER.buffer ? Buffer.from(chunk) : chunk;
}

function onPooledData(this: UpstreamSocket, chunk: Buffer): void {
  this[kPooled]?.onData(chunk);
}

export class PooledSocket {
  readonly socket: Socket;
  readonly pool: TargetPool;
  owner: SocketOwner | undefined;
  /** requests sent on this socket before the current one */
  uses = 0;
  idleSince = 0;
  closed = false;
  /** protocol scratch (the response framer), kept across requests */
  state: unknown;
  constructor(socket: Socket, pool: TargetPool) {
    this.socket = socket;
    this.pool = pool;
    (socket as UpstreamSocket)[kPooled] = this;
    // fires only for sockets read as streams (TLS); onread sockets come through onUpstreamRead
    socket.on("data", onPooledData);
    socket.on("end", () => {
      if (this.owner !== undefined) this.owner.onUpstreamEnd();
      else pool.discard(this);
    });
    socket.on("drain", () => this.owner?.onUpstreamDrain());
    socket.on("close", () => {
      this.closed = true;
      pool.closed(this);
      const owner = this.owner;
      this.owner = undefined;
      owner?.onUpstreamClose();
    });
  }

  /** bytes read from the socket (a shared-buffer slice for onread sockets: see ownBytes) */
  onData(chunk: Buffer): void {
    if (this.owner !== undefined) this.owner.onUpstreamData(chunk);
    else this.pool.discard(this);
  }
}

interface QueuedWaiter {
  waiter: PoolWaiter;
  timer: NodeJS.Timeout | undefined;
}

export class TargetPool {
  readonly target: Target;
  readonly options: ResolvedPool;
  /** sockets open or being opened (idle included) */
  open = 0;
  readonly #idle: PooledSocket[] = [];
  readonly #queue: QueuedWaiter[] = [];
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(target: Target, options: ResolvedPool) {
    this.target = target;
    this.options = options;
  }

  get idleCount(): number {
    return this.#idle.length;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * An idle socket, synchronously, or undefined after arranging for `waiter` to be called
   * (a new connection, or a place in the queue). Throws 503 when the queue is full.
   */
  acquire(waiter: PoolWaiter, fresh = false): PooledSocket | undefined {
    const idle = this.#idle;
    while (idle.length > 0 && !fresh) {
      const ps = idle.pop()!;
      const s = ps.socket;
      if (ps.closed || s.destroyed || !s.writable || s.readyState !== "open") {
        this.discard(ps);
        continue;
      }
      s.ref();
      return ps;
    }
    if (this.#closed) throw new ShuttingDownError();
    if (this.open < this.options.maxSockets || (fresh && this.#idle.length > 0 && this.#dropOldestIdle())) {
      this.#connect(waiter);
      return undefined;
    }
    if (this.#queue.length >= this.options.queueSize) {
      throw new HttpStatusError(503, "PRX_ERR_HTTP_POOL_FULL", `upstream pool queue is full (${this.options.queueSize})`);
    }
    const q: QueuedWaiter = { waiter, timer: undefined };
    if (this.options.queueTimeout > 0) {
      q.timer = setTimeout(() => {
        const i = this.#queue.indexOf(q);
        if (i !== -1) this.#queue.splice(i, 1);
        waiter.poolFailed(new HttpStatusError(503, "PRX_ERR_HTTP_POOL_TIMEOUT", "timed out waiting for an upstream connection"));
      }, this.options.queueTimeout);
    }
    this.#queue.push(q);
    return undefined;
  }

  #dropOldestIdle(): boolean {
    const ps = this.#idle[0];
    if (ps === undefined) return false;
    this.discard(ps);
    return true;
  }

  /** Forgets a waiter that no longer wants a socket (client went away). */
  cancel(waiter: PoolWaiter): void {
    const i = this.#queue.findIndex((q) => q.waiter === waiter);
    if (i === -1) return;
    clearTimeout(this.#queue[i]!.timer);
    this.#queue.splice(i, 1);
  }

  #connect(waiter: PoolWaiter): void {
    this.open++;
    waiter.dialNew().then(
      (socket) => {
        const ps = new PooledSocket(socket, this);
        if (this.#closed) {
          socket.destroy();
          return waiter.poolFailed(new ShuttingDownError());
        }
        waiter.poolReady(ps, true);
      },
      (err: Error) => {
        this.open--;
        waiter.poolFailed(err);
        this.#serveQueue();
      },
    ).catch((err: unknown) => waiter.crashed(err));
  }

  /** A slot freed: dial for the first waiter in the queue. */
  #serveQueue(): void {
    while (this.#queue.length > 0 && this.open < this.options.maxSockets && !this.#closed) {
      const q = this.#queue.shift()!;
      clearTimeout(q.timer);
      this.#connect(q.waiter);
    }
  }

  /** Gives a socket back after an exchange; `reusable` false closes it. */
  release(ps: PooledSocket, reusable: boolean): void {
    ps.owner = undefined;
    if (!reusable || this.#closed || ps.closed || ps.socket.destroyed) {
      this.discard(ps);
      return;
    }
    ps.uses++;
    const q = this.#queue.shift();
    if (q !== undefined) {
      clearTimeout(q.timer);
      q.waiter.poolReady(ps, false);
      return;
    }
    if (this.#idle.length >= this.options.maxIdle || this.options.idleTimeout === 0) {
      this.discard(ps);
      return;
    }
    ps.idleSince = Date.now();
    ps.socket.unref();
    this.#idle.push(ps);
    if (this.#sweeper === undefined) this.#startSweeper();
  }

  /** Takes a socket out of the pool for good (tunnels): it no longer counts. */
  detach(ps: PooledSocket): Socket {
    ps.owner = undefined;
    ps.closed = true;
    ps.socket.removeAllListeners("data");
    ps.socket.removeAllListeners("end");
    ps.socket.removeAllListeners("drain");
    ps.socket.removeAllListeners("close");
    const s = ps.socket as UpstreamSocket;
    s[kPooled] = undefined;
    s[kStreamReads] = true;
    this.open--;
    this.#serveQueue();
    return ps.socket;
  }

  /** Closes a socket (bad state, idle too long, data while idle). */
  discard(ps: PooledSocket): void {
    ps.owner = undefined;
    const i = this.#idle.indexOf(ps);
    if (i !== -1) this.#idle.splice(i, 1);
    ps.socket.destroy();
  }

  /** Socket 'close': the slot is free. */
  closed(ps: PooledSocket): void {
    const i = this.#idle.indexOf(ps);
    if (i !== -1) this.#idle.splice(i, 1);
    this.open--;
    this.#serveQueue();
  }

  #startSweeper(): void {
    const every = Math.max(20, Math.min(1000, Math.floor(this.options.idleTimeout / 4)));
    this.#sweeper = setInterval(() => {
      const limit = Date.now() - this.options.idleTimeout;
      while (this.#idle.length > 0 && this.#idle[0]!.idleSince <= limit) this.discard(this.#idle[0]!);
      if (this.#idle.length === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, every);
    this.#sweeper.unref();
  }

  /** Idle sockets closed now (shutdown); busy ones close when released. */
  closeIdle(): void {
    for (const ps of [...this.#idle]) this.discard(ps);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** No more sockets: idle ones closed, waiters failed with 503. */
  close(): void {
    this.#closed = true;
    this.closeIdle();
    for (const q of this.#queue.splice(0)) {
      clearTimeout(q.timer);
      q.waiter.poolFailed(new ShuttingDownError());
    }
  }
}

const tlsIds = new WeakMap<object, number>();
let nextTlsId = 0;
const keys = new WeakMap<Target, string>();

/** Stable identity of a target for pooling (host, port, TLS settings). */
export function targetKey(t: Target): string {
  let k = keys.get(t);
  if (k !== undefined) return k;
  k = `${t.host}|${t.port}`;
  if (t.tls) {
    let id = tlsIds.get(t.tls);
    if (id === undefined) {
      id = ++nextTlsId;
      tlsIds.set(t.tls, id);
    }
    const simple = !t.tls.ca && !t.tls.cert && !t.tls.key;
    k += simple ? `|tls|${t.tls.servername ?? ""}|${t.tls.rejectUnauthorized !== false}` : `|tls#${id}`;
  }
  keys.set(t, k);
  return k;
}

/**
 * Every target pool of one proxy. Sockets dialled through the SSRF guard (targets of dynamic
 * routes) and sockets dialled without it (the operator's static targets) never share a pool,
 * even to the same address: the guard's verdict is part of the pool's identity, so a guarded
 * route can never be lent a socket the guard did not pass.
 */
export class PoolSet {
  readonly #pools = new Map<string, TargetPool>();
  readonly #guarded = new Map<string, TargetPool>();
  #closed = false;

  get(target: Target, options: ResolvedPool, guarded: boolean): TargetPool {
    const key = targetKey(target);
    const pools = guarded ? this.#guarded : this.#pools;
    let p = pools.get(key);
    if (p === undefined) {
      p = new TargetPool(target, options);
      if (this.#closed) p.close();
      pools.set(key, p);
    }
    return p;
  }

  get size(): number {
    return this.#pools.size + this.#guarded.size;
  }

  *pools(): IterableIterator<TargetPool> {
    yield* this.#pools.values();
    yield* this.#guarded.values();
  }

  closeIdle(): void {
    for (const p of this.pools()) p.closeIdle();
  }

  close(): void {
    this.#closed = true;
    for (const p of this.pools()) p.close();
  }
}
