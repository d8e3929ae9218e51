/**
 * PROXY protocol inbound, per listener (`ListenerConfig.proxyProtocol`): a peer inside
 * `trustedProxies` must start its connection with a v1 or v2 header, read within `timeoutMs`
 * before `onAccept` runs; the client address it carries becomes the connection's address (the
 * `clientIp` routing key, `ConnectionInfo.clientIp/clientPort`, limits, logs). A peer outside
 * the list is not asked for a header: its bytes go to the protocol untouched.
 */
import type { Connection } from "./connection.js";
import { normalizeAddress } from "./connection.js";
import { ConfigError, UpstreamTimeoutError } from "./errors.js";
import type { CloseReason } from "./hooks.js";
import {
  parseProxyHeader,
  PROXY_HEADER_DEFAULT_LIMIT,
  ProxyHeaderError,
  type ProxyHeader,
} from "./proxy-protocol.js";
import { readSocketPrefix } from "./internal/socket-prefix.js";
import { IpMatcher } from "./routing/cidr.js";
import type { ListenerConfig, ListenerProxyProtocol } from "./types.js";

/** How long a trusted peer may take to send its header when `timeoutMs` is not given. */
export const PROXY_HEADER_DEFAULT_TIMEOUT = 5_000;

/** A listener's `proxyProtocol`, checked and compiled. */
export interface InboundProxyProtocol {
  readonly trusted: IpMatcher;
  readonly timeoutMs: number;
  readonly maxLength: number;
}

const compiled = new WeakMap<ListenerProxyProtocol, InboundProxyProtocol>();
const headers = new WeakMap<Connection, ProxyHeader>();

/**
 * Problems with a listener's `proxyProtocol`, one line each (empty: fine or absent); `where`
 * starts each line (default `listener "name": proxyProtocol`).
 */
export function proxyProtocolProblems(listener: Readonly<ListenerConfig>, where = `listener "${listener.name}": proxyProtocol`): string[] {
  const pp = listener.proxyProtocol as unknown;
  if (pp === undefined) return [];
  if (typeof pp !== "object" || pp === null || Array.isArray(pp)) return [`${where} must be an object { trustedProxies, timeoutMs? }`];
  const problems: string[] = [];
  for (const k of Object.keys(pp)) {
    if (k !== "trustedProxies" && k !== "timeoutMs") problems.push(`${where}: unknown option "${k}" (use trustedProxies, timeoutMs)`);
  }
  const { trustedProxies, timeoutMs } = pp as Record<string, unknown>;
  if (!Array.isArray(trustedProxies) || trustedProxies.length === 0 || trustedProxies.some((t) => typeof t !== "string")) {
    problems.push(`${where}.trustedProxies must be a non-empty list of IPs or CIDRs`);
  } else {
    try {
      new IpMatcher(trustedProxies as string[]);
    } catch (err) {
      problems.push(`${where}.trustedProxies: ${(err as Error).message}`);
    }
  }
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 1)) {
    problems.push(`${where}.timeoutMs must be a positive integer (ms)`);
  }
  return problems;
}

function compile(pp: ListenerProxyProtocol): InboundProxyProtocol {
  let c = compiled.get(pp);
  if (c === undefined) {
    if (!Array.isArray(pp.trustedProxies) || pp.trustedProxies.length === 0) throw new ConfigError("proxyProtocol.trustedProxies must be a non-empty list");
    c = Object.freeze({
      trusted: new IpMatcher(pp.trustedProxies),
      timeoutMs: pp.timeoutMs ?? PROXY_HEADER_DEFAULT_TIMEOUT,
      maxLength: PROXY_HEADER_DEFAULT_LIMIT,
    });
    compiled.set(pp, c);
  }
  return c;
}

/**
 * The listener's PROXY settings when this connection's peer must send a header (the listener
 * has `proxyProtocol` and the peer is trusted); undefined otherwise.
 */
export function proxyHeaderExpected(conn: Connection): InboundProxyProtocol | undefined {
  const pp = conn.listener.proxyProtocol;
  if (pp === undefined) return undefined;
  const settings = compile(pp);
  const peer = normalizeAddress(conn.rawSocket.remoteAddress ?? "");
  return settings.trusted.matches(peer) ? settings : undefined;
}

/**
 * `fn` once: when the returned function is called, or as the connection is destroyed, whichever
 * comes first (the proxy reports a trusted peer's connection open once its header is read, and
 * always before it reports it closed).
 */
export function onceBeforeClose(conn: Connection, fn: () => void): () => void {
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    fn();
  };
  conn.onDestroy(once);
  return once;
}

/** The PROXY header a connection arrived with (undefined when none was read). */
export function inboundProxyHeader(conn: Connection): ProxyHeader | undefined {
  return headers.get(conn);
}

export type ProxyHeaderOutcome = { ok: true } | { ok: false; reason: CloseReason; error?: Error };

/**
 * Reads the header of a trusted peer. On success the connection's client address is the one in
 * the header (a v2 LOCAL header, v1 UNKNOWN or an address family without IPs keep the peer's),
 * and the bytes after the header are left on the socket for the protocol. Otherwise says why
 * the connection must close (already logged); the caller closes it.
 */
export async function acceptProxyHeader(conn: Connection, settings: InboundProxyProtocol): Promise<ProxyHeaderOutcome> {
  let data: Buffer | undefined;
  const peer = normalizeAddress(conn.rawSocket.remoteAddress ?? "");
  const logger = conn.proxy.logger;
  let result;
  try {
    result = await readSocketPrefix(conn, conn.rawSocket, settings.timeoutMs, (chunk) => {
      data = data === undefined ? chunk : Buffer.concat([data, chunk]);
      const parsed = parseProxyHeader(data, settings.maxLength);
      if (parsed.state === "partial") return undefined;
      return { value: parsed, unread: data.subarray(parsed.length) };
    });
  } catch (err) {
    const error = err instanceof Error ? err : new ProxyHeaderError(String(err));
    logger.warn("proxy protocol header refused", { id: conn.id, listener: conn.listener.name, peer, error: error.message });
    return { ok: false, reason: "protocol-error", error };
  }
  switch (result.kind) {
    case "closed":
      return { ok: false, reason: conn.closeReason ?? "done" };
    case "ended":
      logger.info("client closed before its proxy protocol header", { id: conn.id, listener: conn.listener.name, peer });
      return { ok: false, reason: "client-closed" };
    case "timeout":
      logger.warn("proxy protocol header timed out", { id: conn.id, listener: conn.listener.name, peer, timeoutMs: settings.timeoutMs });
      return { ok: false, reason: "handshake-timeout", error: new UpstreamTimeoutError("proxy-header", "PROXY protocol header timed out") };
  }
  const header = result.value.header;
  headers.set(conn, header);
  if (header.command === "PROXY" && header.source !== undefined) conn.setClientAddress(header.source.address, header.source.port);
  return { ok: true };
}
