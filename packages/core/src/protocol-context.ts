import type { Socket } from "node:net";
import type { Connection } from "./connection.js";
import type { DialOptions } from "./dialer.js";
import type { ConnectUpstreamOptions } from "./internal/upstream-connect.js";
import type { ReportEmitter } from "./events.js";
import type { ProxyHooks } from "./hooks.js";
import type { ProxyRequest } from "./messages.js";
import type { Logger } from "./plugin.js";
import type { RouteMatchResult } from "./routing/route.js";
import type { CertificateStore } from "./tls.js";
import type { Target, Timeouts } from "./types.js";
import type { RouteKey } from "./vocabulary.js";

/**
 * What a protocol may use of the proxy that accepted a connection (`conn.context`): its hooks,
 * events and logger, its deadlines and certificates, routing, dialing and the L4 connect loop —
 * and nothing of its lifecycle, listeners or route table. `Proxy` implements it.
 */
export interface ProtocolContext {
  /** the extension points; a protocol runs `onRequest` / `onUpstreamResponse` for its messages */
  readonly hooks: ProxyHooks;
  /** report-only events (`upstreamError`, `pluginError`, `requestComplete`, …) */
  readonly events: ReportEmitter;
  readonly logger: Logger;
  /** true once `close()` started: finish the current message, keep nothing for later */
  readonly closing: boolean;
  /** the deadlines of the connection's listener */
  timeoutsFor(conn: Connection): Timeouts;
  /** the certificates of the connection's listener, for protocols that start TLS themselves */
  certificatesFor(conn: Connection): CertificateStore | undefined;
  /** runs `onResolve` for a routing key; throws `ResolveError` */
  resolve(conn: Connection, key: RouteKey): Promise<RouteMatchResult>;
  /** the same answer synchronously when only the route table answers; undefined: use `resolve` */
  tryResolveSync(conn: Connection, key: RouteKey): RouteMatchResult | undefined;
  /**
   * dials a target for the connection (connect timeout, SSRF guard when `dynamic`); `pooled`:
   * for a keep-alive pool, not the connection's (see `Proxy.dial`)
   */
  dial(
    conn: Connection,
    target: Target,
    dynamic: boolean,
    options?: Pick<DialOptions, "allowHalfOpen" | "onread"> & { pooled?: boolean; timeoutMs?: number },
  ): Promise<Socket>;
  /**
   * picks a target of the route and connects, with the retries `onUpstreamResponse` taps ask
   * for; `{ tls: "starttls" }` dials in plaintext and leaves the target's `tls` to the protocol
   */
  connectUpstream(
    conn: Connection,
    match: RouteMatchResult,
    request?: ProxyRequest,
    options?: ConnectUpstreamOptions,
  ): Promise<{ socket: Socket; target: Target }>;
  /** ends a connection after an unexpected failure, logged with the right close reason */
  failConnection(conn: Connection, err: unknown): void;
}
