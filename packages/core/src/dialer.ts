import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupAddress } from "node:dns";
import { isIP, type LookupFunction, type OnReadOpts, type Socket, connect as netConnect } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { kConnection, type OwnedSocket } from "./connection.js";
import { SsrfBlockedError, UpstreamConnectError, UpstreamTimeoutError, ProxyError } from "./errors.js";
import type { IpMatcher } from "./routing/cidr.js";
import { isRefusedAddress } from "./internal/ssrf.js";
import type { Target } from "./types.js";

export interface DialOptions {
  /** connect (and TLS handshake) deadline; 0 disables it */
  timeoutMs: number;
  /** aborts the dial (client went away) */
  signal?: AbortSignal | undefined;
  /**
   * Called with the socket as soon as it exists, so an owner can destroy it (which fails the
   * dial) without an AbortSignal; the connection uses this, as signals cost per connection.
   */
  onSocket?: ((socket: Socket) => void) | undefined;
  /** keep the socket writable after the peer's FIN (byte relays); default false */
  allowHalfOpen?: boolean | undefined;
  /** apply the SSRF guard (targets from a dynamic resolver); `allow` lists permitted ranges */
  guard?: { allow?: IpMatcher | undefined } | false | undefined;
  /**
   * resolves a name to every address, for the guard (default: `dns.promises.lookup` with
   * `all: true`); the lookup counts against `timeoutMs` and `signal` like the connect itself
   */
  lookup?: ((host: string) => Promise<LookupAddress[]>) | undefined;
  /**
   * Node's `onread` for a plain TCP target: reads go to this buffer and callback instead of
   * the socket's stream ('data' never fires). Ignored for TLS targets, which read as streams.
   */
  onread?: OnReadOpts | undefined;
}

/**
 * Opens a TCP (or TLS) connection to a target. The error handler is attached synchronously;
 * the promise settles exactly once; the socket is destroyed on timeout, abort or failure.
 * With the guard on, the name is resolved here, every address is checked, and the socket
 * connects only to the addresses that were checked (no second lookup to rebind). The deadline
 * (`timeoutMs`) and `signal` cover the whole dial, that lookup included.
 */
export async function dial(target: Target, options: DialOptions): Promise<Socket> {
  if (options.signal?.aborted) throw new UpstreamConnectError("dial aborted");
  let addresses: LookupAddress[] | undefined;
  let timeoutMs = options.timeoutMs;
  if (options.guard) {
    const startedAt = performance.now();
    addresses = await withinDeadline(
      checkedAddresses(target.host, options.guard.allow, options.lookup ?? lookupAll),
      target,
      options,
    );
    // the connect gets what the lookup left of the deadline
    if (timeoutMs > 0) timeoutMs = Math.max(1, Math.ceil(timeoutMs - (performance.now() - startedAt)));
  }
  if (options.signal?.aborted) throw new UpstreamConnectError("dial aborted");
  return connectTo(target, options, timeoutMs, addresses);
}

function connectTo(target: Target, options: DialOptions, timeoutMs: number, addresses: LookupAddress[] | undefined): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const lookup = addresses ? fixedLookup(addresses) : undefined;
    const base = {
      host: target.host,
      port: target.port,
      autoSelectFamily: true,
      noDelay: true,
      allowHalfOpen: options.allowHalfOpen === true,
      ...(lookup ? { lookup } : {}),
    };
    let socket: Socket;
    let tlsSocket: TLSSocket | undefined;
    if (target.tls) {
      const t = target.tls;
      const servername = t.servername ?? (isIP(target.host) ? undefined : target.host);
      tlsSocket = tlsConnect({
        ...base,
        ...(servername ? { servername } : {}),
        ...(t.ca ? { ca: t.ca } : {}),
        ...(t.cert ? { cert: t.cert } : {}),
        ...(t.key ? { key: t.key } : {}),
        ...(t.alpn ? { ALPNProtocols: t.alpn } : {}),
        rejectUnauthorized: t.rejectUnauthorized !== false,
      });
      socket = tlsSocket;
    } else {
      socket = netConnect(options.onread ? { ...base, onread: options.onread } : base);
    }
    const state: DialState = { target, resolve, reject, timer: undefined, signal: options.signal, onAbort: undefined };
    (socket as DialingSocket)[kDial] = state;
    // shared handlers, never removed: removing a listener deletes a key of the socket's listener
    // table, which turns it into a dictionary (~450 B per socket); after the dial they do nothing
    // but keep an error on the socket from being unhandled until its owner attaches its own
    socket.on("error", onDialError);
    socket.on("close", onDialClose);
    socket.on(tlsSocket ? "secureConnect" : "connect", onDialConnect);
    // handlers first: an owner that destroys the socket at once still has it fail the dial
    options.onSocket?.(socket);
    if (options.signal) {
      state.onAbort = () => settle(socket as DialingSocket, new UpstreamConnectError("dial aborted"));
      options.signal.addEventListener("abort", state.onAbort, { once: true });
    }
    if (timeoutMs > 0) {
      state.timer = setTimeout(
        () => settle(socket as DialingSocket, new UpstreamTimeoutError("connect", `connect to ${target.host}:${target.port} timed out`)),
        timeoutMs,
      );
    }
  });
}

const kDial = Symbol("switchyard.dial");

interface DialState {
  target: Target;
  resolve: (socket: Socket) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

type DialingSocket = Socket & { [kDial]: DialState | undefined };

/**
 * The dial's error handler. It stays on the socket after the dial: until a relay owns the socket
 * it keeps an error from being unhandled; once a relay does, it reports to the connection (so the
 * relay adds no listener of its own: a second one would turn the entry into an array).
 */
export function onDialError(this: DialingSocket, err: Error): void {
  const t = this[kDial]?.target;
  if (!t) return void (this as unknown as Partial<OwnedSocket>)[kConnection]?.destroy("upstream-error", err);
  settle(this, err instanceof ProxyError ? err : new UpstreamConnectError(`connect to ${t.host}:${t.port} failed: ${err.message}`, { cause: err }));
}

/** The dial's close handler; after the dial it tells a relaying connection that this side closed. */
export function onDialClose(this: DialingSocket): void {
  if (!this[kDial]) return void (this as unknown as Partial<OwnedSocket>)[kConnection]?.closeIfBothSidesClosed();
  settle(this, new UpstreamConnectError("dial aborted: socket closed while connecting"));
}

function onDialConnect(this: DialingSocket): void {
  settle(this);
}

/** Settles a dial exactly once; a failed dial's socket is destroyed. */
function settle(socket: DialingSocket, err?: Error): void {
  const state = socket[kDial];
  if (!state) return;
  socket[kDial] = undefined;
  if (state.timer) clearTimeout(state.timer);
  if (state.onAbort) state.signal?.removeEventListener("abort", state.onAbort);
  if (err) {
    socket.destroy();
    state.reject(err);
  } else state.resolve(socket);
}


/**
 * Settles with `work`, unless the dial's deadline passes or its signal aborts first (then `work`
 * is left to finish on its own; its outcome is ignored). The timer and listener go either way.
 */
function withinDeadline<T>(work: Promise<T>, target: Target, options: DialOptions): Promise<T> {
  const { timeoutMs, signal } = options;
  if (!(timeoutMs > 0) && signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => done(new UpstreamConnectError("dial aborted"));
    function done(err: Error | undefined, value?: T): void {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(value as T);
    }
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => done(new UpstreamTimeoutError("connect", `connect to ${target.host}:${target.port} timed out (resolving the name)`)),
        timeoutMs,
      );
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => done(undefined, value),
      (err: Error) => done(err),
    );
  });
}

function lookupAll(host: string): Promise<LookupAddress[]> {
  return dnsLookup(host, { all: true });
}

async function checkedAddresses(
  host: string,
  allow: IpMatcher | undefined,
  lookup: (host: string) => Promise<LookupAddress[]>,
): Promise<LookupAddress[]> {
  let all: LookupAddress[];
  if (isIP(host)) all = [{ address: host, family: isIP(host) }];
  else {
    try {
      all = await lookup(host);
    } catch (err) {
      throw new UpstreamConnectError(`cannot resolve ${host}: ${(err as Error).message}`, { cause: err });
    }
  }
  const ok = all.filter((a) => !isRefusedAddress(a.address, allow));
  if (ok.length === 0) throw new SsrfBlockedError(all[0]?.address ?? host);
  return ok;
}

function fixedLookup(addresses: LookupAddress[]): LookupFunction {
  return (_host, opts, cb) => {
    if (opts.all) cb(null, addresses);
    else cb(null, addresses[0]!.address, addresses[0]!.family);
  };
}
