import type { SecureContextOptions } from "node:tls";
import type { VerifyClientMode } from "./client-identity.js";

/** Where traffic goes. Parsed from "host:port", "[::1]:5432", "http://h:p" or "https://h". */
export interface Target {
  readonly host: string;
  readonly port: number;
  /** scheme of a URL target ("http", "https"), undefined for plain host:port */
  readonly scheme?: string;
  /** originate TLS towards the target (true for https:// targets) */
  readonly tls?: TargetTls;
  /** extra per-target data a resolver wants to carry along */
  readonly meta?: Readonly<Record<string, unknown>>;
}

/** TLS origination options; certificates are verified unless `rejectUnauthorized: false`. */
export interface TargetTls {
  readonly ca?: string | Buffer | Array<string | Buffer>;
  readonly servername?: string;
  readonly rejectUnauthorized?: boolean;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly alpn?: string[];
}

/** What a target may be written as in routes and resolver answers. */
export type TargetInput = string | (Omit<Target, "tls"> & { tls?: TargetTls | boolean });

export type LoadBalancing = "round-robin" | "least-connections" | "random";

/** Match conditions of a route; every given field must match. */
export interface RouteMatch {
  /** host glob(s): "example.com", "*.example.com", "*" */
  host?: string | string[];
  /** TLS SNI glob(s) */
  sni?: string | string[];
  /** path prefix ("/api") or glob with params ("/users/:id/*") */
  path?: string | string[];
  /** HTTP methods allowed on this route */
  method?: string | string[];
  database?: string | string[];
  user?: string | string[];
  ehlo?: string | string[];
  /** client IP or CIDR list ("10.0.0.0/8", "::1") */
  clientIp?: string | string[];
  /** further typed keys contributed by protocol packages, matched as globs */
  [key: string]: string | string[] | undefined;
}

/** A route as configured. Protocol packages read their own options from `options`. */
export interface RouteConfig {
  name?: string;
  /** listener name(s) this route applies to; all listeners when absent */
  listener?: string | string[];
  match?: RouteMatch;
  targets: TargetInput[];
  lb?: LoadBalancing;
  /** higher wins before specificity is compared (default 0) */
  priority?: number;
  /** protocol- or plugin-specific per-route options (timeouts, limits, rewrites, ...) */
  options?: Record<string, unknown>;
}

export type { RouteKey } from "./vocabulary.js";

/** TLS termination settings of a listener; `sni` maps host globs to their own certificate. */
export interface ListenerTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA certificate(s) that client certificates must chain to (PEM) */
  ca?: string | Buffer | Array<string | Buffer>;
  sni?: Record<string, { cert: string | Buffer; key: string | Buffer }>;
  /**
   * ask clients for a certificate and verify it (nginx's `ssl_verify_client`): `"required"`,
   * `"optional"` or `"optional-no-ca"`; see `VerifyClientMode`. The identity lands in
   * `ConnectionInfo.identity`. Needs `ca`.
   */
  verifyClient?: VerifyClientMode;
  /**
   * certificate revocation list(s), PEM, of every CA in `ca`: a revoked client certificate fails
   * verification (`CERT_REVOKED`). With a CRL set, a CA without one fails verification too
   * (`UNABLE_TO_GET_CRL`), as OpenSSL checks the whole chain.
   */
  crl?: string | Buffer | Array<string | Buffer>;
  /** older spelling: `requestCert: true` is `verifyClient: "required"`, or `"optional"` with `rejectUnauthorized: false` */
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
  /** lowest protocol version accepted (default "TLSv1.2") */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /**
   * OpenSSL cipher list, TLS 1.3 suites (`TLS_…`) and TLS 1.2 ciphers in one string. The default
   * (`DEFAULT_LISTENER_CIPHERS`) has forward secrecy and AEAD only: no static-RSA key exchange.
   */
  ciphers?: string;
  /** the server's cipher order wins over the client's (default false: every default suite is strong) */
  honorCipherOrder?: boolean;
  /**
   * extra Node secure-context options; `minVersion`, `ciphers` and `honorCipherOrder` above take
   * precedence, and client-initiated renegotiation stays refused whatever `secureOptions` says
   */
  secureContext?: SecureContextOptions;
}

export interface ListenerConfig {
  name: string;
  protocol: string;
  /** default 0.0.0.0 */
  host?: string;
  /** 0 picks a free port; `addresses()` reports it */
  port: number;
  tls?: ListenerTls;
  /** per-listener phase deadlines; defaults come from the proxy's `timeouts` */
  timeouts?: Partial<Timeouts>;
  /** most concurrent connections on this listener; more are closed at accept (default unlimited) */
  maxConnections?: number;
  /** listener-level options for the protocol (timeouts, limits) */
  options?: Record<string, unknown>;
  /** read a PROXY protocol v1/v2 header from trusted peers before anything else (any protocol) */
  proxyProtocol?: ListenerProxyProtocol;
}

/** PROXY protocol inbound on a listener; see proxy-protocol-accept.ts and the README. */
export interface ListenerProxyProtocol {
  /** IPs / CIDRs whose connections must start with a header; other peers send none */
  trustedProxies: string[];
  /** how long a trusted peer may take to send its header (default 5000 ms) */
  timeoutMs?: number;
}

/** Per-phase deadlines in milliseconds; 0 disables a phase's timer. */
export interface Timeouts {
  /** from accept until the routing key is known (first bytes, TLS, protocol greeting) */
  handshake: number;
  /** TCP (and TLS) connect to the upstream */
  connect: number;
  /** no traffic in either direction */
  idle: number;
  /** total lifetime of one connection */
  lifetime: number;
}

export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = Object.freeze({
  handshake: 10_000,
  connect: 5_000,
  idle: 300_000,
  lifetime: 0,
});

/** SSRF guard for targets that come from a dynamic resolver. */
export interface SsrfOptions {
  /** CIDRs that are allowed even though they fall in a refused range */
  allow?: string[];
  /** turn the guard off entirely (not recommended) */
  disabled?: boolean;
}
