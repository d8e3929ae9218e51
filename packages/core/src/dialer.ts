import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupAddress } from "node:dns";
import { isIP, type LookupFunction, type Socket, connect as netConnect } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { SsrfBlockedError, UpstreamConnectError, UpstreamTimeoutError, ProxyError } from "./errors.js";
import type { IpMatcher } from "./routing/cidr.js";
import { isRefusedAddress } from "./routing/ssrf.js";
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
}

/**
 * Opens a TCP (or TLS) connection to a target. The error handler is attached synchronously;
 * the promise settles exactly once; the socket is destroyed on timeout, abort or failure.
 * With the guard on, the name is resolved here, every address is checked, and the socket
 * connects only to the addresses that were checked (no second lookup to rebind).
 */
export async function dial(target: Target, options: DialOptions): Promise<Socket> {
  let addresses: LookupAddress[] | undefined;
  if (options.guard) {
    addresses = await checkedAddresses(target.host, options.guard.allow, options.signal);
  }
  if (options.signal?.aborted) throw new UpstreamConnectError("dial aborted");
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
      socket = netConnect(base);
    }
    options.onSocket?.(socket);
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        // keep a handler so a later error before the caller attaches its own cannot crash us
        socket.on("error", noop);
        resolve(socket);
      }
    };
    const onError = (err: Error) => {
      finish(
        err instanceof ProxyError
          ? err
          : new UpstreamConnectError(`connect to ${target.host}:${target.port} failed: ${err.message}`, { cause: err }),
      );
    };
    const onAbort = () => finish(new UpstreamConnectError("dial aborted"));
    const onClose = () => finish(new UpstreamConnectError("dial aborted: socket closed while connecting"));
    socket.on("error", onError);
    socket.once("close", onClose);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.timeoutMs > 0) {
      timer = setTimeout(
        () => finish(new UpstreamTimeoutError("connect", `connect to ${target.host}:${target.port} timed out`)),
        options.timeoutMs,
      );
    }
    socket.once(tlsSocket ? "secureConnect" : "connect", () => finish());
  });
}

function noop(): void {}

async function checkedAddresses(
  host: string,
  allow: IpMatcher | undefined,
  signal: AbortSignal | undefined,
): Promise<LookupAddress[]> {
  let all: LookupAddress[];
  if (isIP(host)) all = [{ address: host, family: isIP(host) }];
  else {
    try {
      all = await dnsLookup(host, { all: true });
    } catch (err) {
      throw new UpstreamConnectError(`cannot resolve ${host}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (signal?.aborted) throw new UpstreamConnectError("dial aborted");
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
