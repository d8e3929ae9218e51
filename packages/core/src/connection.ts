import type { Socket } from "node:net";
import type { ClientIdentity, CloseInfo, CloseReason, ConnectionInfo } from "./vocabulary.js";
import type { ProtocolContext } from "./protocol-context.js";
import type { Proxy } from "./proxy.js";
import type { Route } from "./routing/route.js";
import { canTransition, IllegalTransitionError, type ConnectionState } from "./connection-state.js";
import { clock } from "./internal/idle.js";
import { formatTarget } from "./routing/target.js";
import { identitySummary } from "./client-identity.js";
import type { ListenerConfig, Target } from "./types.js";

export type { ConnectionState };

/**
 * The deadlines a connection owns, one timer each (arming one again re-arms it):
 * - `HANDSHAKE`: accept until the routing key is known (the listener's `handshake` timeout);
 * - `TLS_HANDSHAKE`: a TLS upgrade of the client socket;
 * - `LIFETIME`: the whole connection (the listener's `lifetime` timeout);
 * - `LINGER`: after the proxy's last byte, how long a closing session waits for the client;
 * - `REFUSAL`: a refusal in protocol terms (the protocol's answer and the client's close).
 */
export const ConnectionTimer = Object.freeze({
  HANDSHAKE: "handshake",
  TLS_HANDSHAKE: "tls-handshake",
  LIFETIME: "lifetime",
  LINGER: "linger",
  REFUSAL: "refusal",
} as const);
export type ConnectionTimer = (typeof ConnectionTimer)[keyof typeof ConnectionTimer];

/** each timer's slot in a connection's timer array */
const TIMER_SLOT: Readonly<Record<ConnectionTimer, number>> = { handshake: 0, "tls-handshake": 1, lifetime: 2, linger: 3, refusal: 4 };
const TIMER_COUNT = 5;

/**
 * A deadline a protocol package adds to its connections (an SMTP command timeout, a backend
 * reply wait). Made once per concept at module load with `defineConnectionTimer`; armed with
 * `conn.timer(t, ms, fn)` like core's own, and released by `destroy` like them.
 */
export interface ProtocolTimer {
  readonly name: string;
  /** @internal the timer's slot in every connection's timer array */
  readonly slot: number;
}
let nextTimerSlot = TIMER_COUNT;

/** Declares a protocol's own connection timer (call once, at module level: each call takes a slot). */
export function defineConnectionTimer(name: string): ProtocolTimer {
  return Object.freeze({ name, slot: nextTimerSlot++ });
}

function slotOf(name: ConnectionTimer | ProtocolTimer): number {
  return typeof name === "string" ? TIMER_SLOT[name] : name.slot;
}

/** what `onDestroy` runs: the close reason and the connection */
export type Cleanup = (reason: CloseReason, conn: Connection) => void;

/** the connection a socket belongs to, for shared (closure-free) event handlers */
export const kConnection = Symbol("switchyard.connection");
export type OwnedSocket = Socket & { [kConnection]: Connection };

let nextId = 0;
/** one shared abort reason: building a DOMException with a stack per close is measurable */
const CLOSED = new DOMException("connection closed", "AbortError");
const idPrefix = process.pid.toString(36);

/**
 * One downstream connection and everything it owns: timers, listeners, the upstream socket.
 * All of it is released by one idempotent `destroy(reason)`; there is no second cleanup path.
 */
export class Connection {
  readonly listener: Readonly<ListenerConfig>;
  readonly startedAt = Date.now();
  /** the raw accepted socket; its byte counters are the one place bytes are counted */
  readonly rawSocket: Socket;
  /** the client stream: the raw socket, or the TLS socket after an upgrade */
  socket: Socket;
  route: Route | undefined;
  target: Target | undefined;
  upstream: Socket | undefined;
  /** set when the proxy closes gracefully: finish the current message, then close */
  draining = false;
  /** idle timeout of a relayed connection (0: not watched); see idle.ts */
  idleMs = 0;
  /** coarse time of the last relayed chunk */
  activeAt = 0;

  /**
   * The proxy that accepted it. A protocol uses `context` (what protocols may use of it); the
   * whole `Proxy` is for keying per-proxy state and for plugins.
   */
  readonly proxy: Proxy;
  // created on first use: an idle proxied connection should cost as little memory as possible
  readonly #seq: number;
  #id: string | undefined;
  #info: Info | undefined;
  #abort: AbortController | undefined;
  // the balancer slot this connection holds (least-connections bookkeeping), released on destroy
  #leaseRoute: Route | undefined;
  #leaseTarget: Target | undefined;
  #state: ConnectionState = "accepting";
  /** by TIMER_SLOT; created with the first timer */
  #timers: Array<NodeJS.Timeout | undefined> | undefined;
  // one cleanup is kept as it is, more in an array: most connections have none or one
  #cleanups: Cleanup | Cleanup[] | undefined;
  #drainHandler: ((conn: Connection) => void) | undefined;
  #clientCloseHandler: ((conn: Connection) => void) | undefined;
  #closeReason: CloseReason | undefined;
  /** set when core refuses the connection: however it then ends, it ends as refused */
  #refusedAs: { reason: CloseReason; error: unknown } | undefined;
  /** the client address a trusted PROXY protocol header gave (proxy-protocol-accept.ts) */
  #client: { ip: string; port: number } | undefined;

  constructor(proxy: Proxy, listener: Readonly<ListenerConfig>, socket: Socket) {
    this.proxy = proxy;
    this.#seq = ++nextId;
    this.listener = listener;
    this.rawSocket = socket;
    this.socket = socket;
  }

  /** what the protocol may use of the proxy: hooks, events, logger, deadlines, resolve, dial */
  get context(): ProtocolContext {
    return this.proxy;
  }

  /** unique in this process: the pid and a sequence number, base 36 */
  get id(): string {
    return (this.#id ??= `${idPrefix}-${this.#seq.toString(36)}`);
  }

  /** what hooks, events and logs see of the client side */
  get info(): ConnectionInfo & { tls: boolean; servername?: string | undefined } {
    return (this.#info ??= new Info(this.id, this.listener, this.rawSocket, this.#client));
  }

  /**
   * Replaces the client address (the socket's peer) with the one a trusted PROXY protocol
   * header carried: routes, plugins, limits and logs see this one from now on.
   */
  setClientAddress(ip: string, port: number): void {
    this.#client = { ip: normalizeAddress(ip), port };
    if (this.#info) {
      this.#info.clientIp = this.#client.ip;
      this.#info.clientPort = port;
    }
  }

  /** the client certificate's identity (after a TLS upgrade that asked for one), without building `info` */
  get identity(): ClientIdentity | undefined {
    return this.#info?.identity;
  }

  /** the client's address ("::ffff:" stripped from IPv4-mapped addresses) */
  get clientIp(): string {
    return this.#info?.clientIp ?? this.#client?.ip ?? normalizeAddress(this.rawSocket.remoteAddress ?? "");
  }

  /**
   * Watches a relayed connection for idleness: it is destroyed with "idle-timeout" once no chunk
   * moved either way for `ms` (0: never). The relay calls `touch()` for every chunk.
   */
  watchIdle(ms: number): void {
    if (this.destroyed || this.idleMs > 0 || !(ms > 0)) return;
    this.activeAt = this.proxy.idleSweeper.watch(ms);
    this.idleMs = ms;
  }

  /** Records traffic for the idle timeout. */
  touch(): void {
    this.activeAt = clock.now;
  }

  /** aborted when the connection is destroyed: pass it to anything async the connection awaits */
  get signal(): AbortSignal {
    this.#abort ??= new AbortController();
    if (this.destroyed && !this.#abort.signal.aborted) this.#abort.abort(CLOSED);
    return this.#abort.signal;
  }

  /** where the connection is in its life; see connection-state.ts for the transitions */
  get state(): ConnectionState {
    return this.#state;
  }

  /** true from the moment `destroy` starts (state `closing`, then `closed`) */
  get destroyed(): boolean {
    return this.#state === "closing" || this.#state === "closed";
  }

  get closeReason(): CloseReason | undefined {
    return this.#closeReason;
  }

  /**
   * Moves the connection to `state` along the transition table (connection-state.ts); the same
   * state again is no change. Throws `IllegalTransitionError` for a move the table does not have
   * (a bug). A connection already being destroyed stays as it is: work that finishes after the
   * client left may still report its phase.
   */
  setState(state: ConnectionState): void {
    const from = this.#state;
    if (from === "closing" || from === "closed") return;
    if (state === "closing" || state === "closed") throw new IllegalTransitionError(this.id, from, state); // only destroy() closes
    if (!canTransition(from, state)) throw new IllegalTransitionError(this.id, from, state);
    this.#state = state;
  }

  /** Arms (or re-arms) one of the connection's timers; `ms` 0 (or less) leaves it disarmed. */
  timer(name: ConnectionTimer | ProtocolTimer, ms: number, onExpire: () => void): void {
    if (this.destroyed) return;
    this.clearTimer(name);
    if (!(ms > 0)) return;
    const slot = slotOf(name);
    const timers = (this.#timers ??= new Array<NodeJS.Timeout | undefined>(TIMER_COUNT).fill(undefined));
    timers[slot] = setTimeout(() => {
      timers[slot] = undefined;
      onExpire();
    }, ms);
  }

  clearTimer(name: ConnectionTimer | ProtocolTimer): void {
    const timers = this.#timers;
    if (timers === undefined) return;
    const slot = slotOf(name);
    const t = timers[slot];
    if (t !== undefined) {
      clearTimeout(t);
      timers[slot] = undefined;
    }
  }

  /** Takes a balancer slot for `target` of `route`, released once when the connection ends. */
  lease(route: Route, target: Target): void {
    this.#releaseLease();
    route.balancer.acquire(target);
    this.#leaseRoute = route;
    this.#leaseTarget = target;
  }

  #releaseLease(): void {
    if (this.#leaseRoute && this.#leaseTarget) this.#leaseRoute.balancer.release(this.#leaseTarget);
    this.#leaseRoute = undefined;
    this.#leaseTarget = undefined;
  }

  /**
   * Registers cleanup to run once, on destroy. Runs at once if already destroyed. It gets the
   * connection, so a shared function can serve every connection (no closure per connection).
   */
  onDestroy(fn: Cleanup): void {
    if (this.destroyed) fn(this.#closeReason ?? "done", this);
    else if (this.#cleanups === undefined) this.#cleanups = fn;
    else if (Array.isArray(this.#cleanups)) this.#cleanups.push(fn);
    else this.#cleanups = [this.#cleanups, fn];
  }

  /** How the protocol wants to be told the proxy is draining (keep-alive sessions close). */
  onDrain(fn: (conn: Connection) => void): void {
    this.#drainHandler = fn;
  }

  /**
   * Replaces what happens when the client socket closes. By default the connection is destroyed
   * with "client-closed"; the relay counts it as one side of a normal close instead.
   */
  onClientClose(fn: (conn: Connection) => void): void {
    this.#clientCloseHandler = fn;
  }

  /**
   * Core refuses this connection (limit, onAccept rejection, handshake deadline, shutdown): from
   * now on it closes with `reason` whichever side notices the end first — the protocol's reader
   * seeing the client's FIN after the refusal answer included.
   */
  markRefused(reason: CloseReason, error: unknown): void {
    this.#refusedAs ??= { reason, error };
  }

  /** Called by the proxy when the accepted socket emits "close". */
  clientClosed(): void {
    if (this.#clientCloseHandler) this.#clientCloseHandler(this);
    else this.destroy("client-closed");
  }

  /** Relayed connections end normally once the client and the upstream socket have both closed. */
  closeIfBothSidesClosed(): void {
    const c = this.socket;
    const u = this.upstream;
    if ((c.closed || c.destroyed) && u !== undefined && (u.closed || u.destroyed)) this.destroy("done");
  }

  /** Called by the proxy on graceful close. */
  drain(): void {
    if (this.draining || this.destroyed) return;
    this.draining = true;
    this.#drainHandler?.(this);
  }

  /** Releases everything the connection owns. Idempotent; the first reason is kept. */
  destroy(reason: CloseReason, error?: unknown): void {
    if (this.destroyed) return;
    if (this.#refusedAs !== undefined) ({ reason, error } = this.#refusedAs);
    this.#state = "closing";
    this.#closeReason = reason;
    if (this.#timers) {
      for (const t of this.#timers) if (t !== undefined) clearTimeout(t);
      this.#timers = undefined;
    }
    this.#abort?.abort(CLOSED);
    this.#releaseLease();
    if (this.idleMs > 0) {
      this.idleMs = 0;
      this.proxy.idleSweeper.unwatch();
    }
    const cleanups = this.#cleanups;
    this.#cleanups = undefined;
    if (cleanups !== undefined) {
      for (const fn of Array.isArray(cleanups) ? cleanups : [cleanups]) {
        try {
          fn(reason, this);
        } catch {
          // a cleanup must not stop the others
        }
      }
    }
    // the info object is built on first use, possibly by a close listener after this point: read
    // the peer address while the socket can still tell it (Node keeps it once read)
    if (this.#info === undefined) void this.rawSocket.remoteAddress;
    this.upstream?.destroy();
    if (this.socket !== this.rawSocket) this.socket.destroy();
    this.rawSocket.destroy();
    const info: CloseInfo = {
      reason,
      error: error instanceof Error ? error : error === undefined ? undefined : new Error(String(error)),
      bytesIn: this.rawSocket.bytesRead,
      bytesOut: this.rawSocket.bytesWritten,
      durationMs: Date.now() - this.startedAt,
      route: this.route?.name,
      target: this.target ? formatTarget(this.target) : undefined,
    };
    try {
      this.proxy.connectionClosed(this, info);
    } finally {
      this.#state = "closed";
    }
  }
}

/** "::ffff:1.2.3.4" → "1.2.3.4"; other addresses as they are. */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** ConnectionInfo whose local port is read only when asked (it costs a getsockname call). */
class Info implements ConnectionInfo {
  readonly id: string;
  readonly listener: string;
  readonly protocol: string;
  clientIp: string;
  clientPort: number;
  tls = false;
  servername: string | undefined = undefined;
  identity: ClientIdentity | undefined = undefined;
  readonly #socket: Socket;
  #localPort: number | undefined;
  constructor(id: string, listener: Readonly<ListenerConfig>, socket: Socket, client?: { ip: string; port: number }) {
    this.id = id;
    this.listener = listener.name;
    this.protocol = listener.protocol;
    this.clientIp = client?.ip ?? normalizeAddress(socket.remoteAddress ?? "");
    this.clientPort = client?.port ?? socket.remotePort ?? 0;
    this.#socket = socket;
  }
  get localPort(): number {
    return (this.#localPort ??= this.#socket.localPort ?? 0);
  }
  toJSON(): Record<string, unknown> {
    return { id: this.id, listener: this.listener, protocol: this.protocol, clientIp: this.clientIp, clientPort: this.clientPort, localPort: this.localPort, tls: this.tls, servername: this.servername, ...(this.identity ? { clientCert: identitySummary(this.identity) } : {}) };
  }
}
