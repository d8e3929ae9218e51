/**
 * Options of the HTTP protocol: defaults given to `new HttpProtocol(options)`, overridden per
 * listener (`ListenerConfig.options`) and, for the request-scoped ones, per route
 * (`RouteConfig.options`). Every name here is documented in the README.
 */
import { ConfigError, unknownOptionMessage, type Route } from "@switchyard/core";
import type { ErrorBodies, ErrorBody } from "./errors-response.js";
import type { FramerLimits } from "./internal/parser.js";

/** Upstream keep-alive pool, per target. */
export interface PoolOptions {
  /** most open sockets per target, busy or idle (default 256) */
  maxSockets?: number;
  /** most idle sockets kept per target (default 128) */
  maxIdle?: number;
  /** an idle socket is closed after this many ms (default 3000; keep it below the upstream's keep-alive timeout) */
  idleTimeout?: number;
  /** most requests waiting for a socket when `maxSockets` are busy; more get 503 (default 1024) */
  queueSize?: number;
  /** how long a request waits in that queue before 503 (default 5000 ms) */
  queueTimeout?: number;
}

/** Options that apply to one request; routes may override them. */
export interface HttpRequestOptions {
  /** upstream TCP/TLS connect deadline in ms (default: the listener's `timeouts.connect`) → 504 */
  connectTimeout?: number;
  /** from the request being sent until the upstream's response head (default 30000) → 504 */
  upstreamHeadersTimeout?: number;
  /** no body byte in either direction for this long (default 60000) → 408/504 or abort */
  bodyTimeout?: number;
  /** total deadline of one request (default 0 = none) → 504 or abort */
  requestTimeout?: number;
  /** largest request body in bytes; 0 = unlimited (default 0) → 413 */
  maxBodySize?: number;
  /** "relay" forwards `Expect: 100-continue` and relays the upstream's 100; "answer" sends 100 itself (default "relay") */
  expectContinue?: "relay" | "answer";
  /** "relay": if the upstream sends neither 100 nor a response and the client sends no body for this long, the proxy sends 100 itself (default 1000; 0 = never) */
  expectContinueTimeout?: number;
  /** upstream pool settings (the first route that creates a target's pool sets them) */
  pool?: PoolOptions;
  /**
   * own bodies for the proxy's error responses, by status (400-599): a text (sent as
   * text/plain) or `{ contentType, body }`; `{status}` and `{requestId}` in it are filled in.
   * A route's entries override the listener's for the same status; other statuses keep the
   * default body (the status and the request id)
   */
  errorBodies?: Record<string, string | { contentType?: string; body: string }>;
}

/** Per-route options (`RouteConfig.options`). */
export interface HttpRouteOptions extends HttpRequestOptions {
  /** remove the matched path prefix before forwarding: true (the route's prefix) or a literal prefix */
  stripPrefix?: boolean | string;
  /** new request path: ":name" and "*" are replaced by path params; the query string is kept */
  rewrite?: string;
}

/** Per-listener options (`ListenerConfig.options`) and the `HttpProtocol` constructor defaults. */
export interface HttpListenerOptions extends HttpRequestOptions {
  /** time to receive a complete request head (default 10000) → 408 */
  headersTimeout?: number;
  /** idle time between requests on a keep-alive connection (default 5000); then closed quietly */
  keepAliveTimeout?: number;
  /** bytes in a request head (default 16384; at least 64, never disabled) → 431 */
  maxHeaderSize?: number;
  /** header lines in a request head (default 100; 0 = no limit) → 431 */
  maxHeaderCount?: number;
  /** request-target length (default 8192; 0 = no limit beyond maxHeaderSize) → 414 */
  maxUrlLength?: number;
  /** requests served on one connection before it is closed; 0 = unlimited (default 0) */
  maxRequestsPerConnection?: number;
  /** host globs this listener serves; a request for another Host gets 421 instead of 404 */
  hosts?: string[];
  /** after the last response, how long to wait for the client to close (default 2000) */
  lingerTimeout?: number;
  /**
   * forward the normalised request-target (RFC 3986 §6.2.2: dot segments removed, escaped
   * unreserved characters decoded, other escapes in upper case), which `onRequest` taps see as
   * `req.url` (default true). false forwards the target as the client sent it; routing and
   * `req.path` use the normalised path either way
   */
  normalizePath?: boolean;
}

export interface ResolvedPool {
  maxSockets: number;
  maxIdle: number;
  idleTimeout: number;
  queueSize: number;
  queueTimeout: number;
}

export interface ResolvedRequestOptions {
  connectTimeout: number;
  upstreamHeadersTimeout: number;
  bodyTimeout: number;
  requestTimeout: number;
  maxBodySize: number;
  expectContinue: "relay" | "answer";
  expectContinueTimeout: number;
  pool: ResolvedPool;
  errorBodies: ErrorBodies | undefined;
}

export interface ResolvedRouteOptions extends ResolvedRequestOptions {
  stripPrefix: boolean | string;
  rewrite: string | undefined;
}

export interface ResolvedListenerOptions extends ResolvedRequestOptions {
  headersTimeout: number;
  keepAliveTimeout: number;
  maxHeaderSize: number;
  maxHeaderCount: number;
  maxUrlLength: number;
  maxRequestsPerConnection: number;
  hosts: RegExp[] | undefined;
  lingerTimeout: number;
  normalizePath: boolean;
  /** the request framer's limits (one object shared by the listener's sessions) */
  requestLimits: FramerLimits;
  /** the same options as route defaults (stripPrefix off) */
  route: ResolvedRouteOptions;
}

export const DEFAULT_POOL: Readonly<ResolvedPool> = Object.freeze({
  maxSockets: 256,
  maxIdle: 128,
  idleTimeout: 3000,
  queueSize: 1024,
  queueTimeout: 5000,
});

function num(where: string, name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new ConfigError(`${where}: ${name} must be a number >= 0`);
  return v;
}

/** Option names, per place they may appear (unknown names are config errors, not ignored). */
const POOL_KEYS = ["maxSockets", "maxIdle", "idleTimeout", "queueSize", "queueTimeout"] as const;
const REQUEST_KEYS = [
  "connectTimeout",
  "upstreamHeadersTimeout",
  "bodyTimeout",
  "requestTimeout",
  "maxBodySize",
  "expectContinue",
  "expectContinueTimeout",
  "pool",
  "errorBodies",
] as const;
/** what `route.options` keys the HTTP protocol reads */
export const ROUTE_KEYS: readonly string[] = [...REQUEST_KEYS, "stripPrefix", "rewrite"];
const LISTENER_KEYS: readonly string[] = [
  ...REQUEST_KEYS,
  "headersTimeout",
  "keepAliveTimeout",
  "maxHeaderSize",
  "maxHeaderCount",
  "maxUrlLength",
  "maxRequestsPerConnection",
  "hosts",
  "lingerTimeout",
  "normalizePath",
];
/** options that existed once, with why they are gone */
const REMOVED: Readonly<Record<string, string>> = {
  maxPipelined:
    "was removed: pipelined requests are served one at a time and the next one is not read before the current response is written (README \"Pipelining\")",
};

function rejectUnknown(where: string, o: Record<string, unknown>, known: readonly string[], prefix = ""): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const removed = prefix === "" ? REMOVED[k] : undefined;
    throw new ConfigError(`${where}: ${removed ? `${k} ${removed}` : unknownOptionMessage(prefix + k, known.map((n) => prefix + n))}`);
  }
}

function pool(where: string, v: unknown, base: ResolvedPool): ResolvedPool {
  if (v === undefined) return base;
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(`${where}: pool must be an object`);
  const p = v as Record<string, unknown>;
  rejectUnknown(where, p, POOL_KEYS, "pool.");
  return {
    maxSockets: Math.max(1, num(where, "pool.maxSockets", p.maxSockets, base.maxSockets)),
    maxIdle: num(where, "pool.maxIdle", p.maxIdle, base.maxIdle),
    idleTimeout: num(where, "pool.idleTimeout", p.idleTimeout, base.idleTimeout),
    queueSize: num(where, "pool.queueSize", p.queueSize, base.queueSize),
    queueTimeout: num(where, "pool.queueTimeout", p.queueTimeout, base.queueTimeout),
  };
}

function requestOptions(where: string, o: Record<string, unknown>, base: ResolvedRequestOptions): ResolvedRequestOptions {
  const expect = o.expectContinue ?? base.expectContinue;
  if (expect !== "relay" && expect !== "answer") throw new ConfigError(`${where}: expectContinue must be "relay" or "answer"`);
  return {
    connectTimeout: num(where, "connectTimeout", o.connectTimeout, base.connectTimeout),
    upstreamHeadersTimeout: num(where, "upstreamHeadersTimeout", o.upstreamHeadersTimeout, base.upstreamHeadersTimeout),
    bodyTimeout: num(where, "bodyTimeout", o.bodyTimeout, base.bodyTimeout),
    requestTimeout: num(where, "requestTimeout", o.requestTimeout, base.requestTimeout),
    maxBodySize: num(where, "maxBodySize", o.maxBodySize, base.maxBodySize),
    expectContinue: expect,
    expectContinueTimeout: num(where, "expectContinueTimeout", o.expectContinueTimeout, base.expectContinueTimeout),
    pool: pool(where, o.pool, base.pool),
    errorBodies: errorBodies(where, o.errorBodies, base.errorBodies),
  };
}

/** a media type for Content-Type: visible ASCII, no line break or quote games */
const MEDIA_TYPE = /^[\x21-\x7e]+\/[\x21-\x7e]+(?:[ \t]*;[ \t]*[\x21-\x7e]+)*$/;

/** `errorBodies` checked and merged over `base` (the listener's, for a route). */
function errorBodies(where: string, v: unknown, base: ErrorBodies | undefined): ErrorBodies | undefined {
  if (v === undefined) return base;
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(`${where}: errorBodies must be an object of status → body`);
  const out = new Map<number, ErrorBody>(base);
  for (const [key, value] of Object.entries(v as Record<string, unknown>)) {
    const status = /^[45]\d\d$/.test(key) ? +key : 0;
    if (status < 400) throw new ConfigError(`${where}: errorBodies."${key}" is not an error status (400-599)`);
    if (typeof value === "string") {
      out.set(status, { contentType: "text/plain; charset=utf-8", body: value });
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new ConfigError(`${where}: errorBodies."${key}" must be a string or { contentType, body }`);
    }
    const b = value as Record<string, unknown>;
    rejectUnknown(where, b, ["contentType", "body"], `errorBodies."${key}".`);
    if (typeof b.body !== "string") throw new ConfigError(`${where}: errorBodies."${key}".body must be a string`);
    const type = b.contentType ?? "text/plain; charset=utf-8";
    if (typeof type !== "string" || !MEDIA_TYPE.test(type)) throw new ConfigError(`${where}: errorBodies."${key}".contentType must be a media type such as "text/html; charset=utf-8"`);
    out.set(status, { contentType: type, body: b.body });
  }
  return out;
}

/** Host glob → RegExp ("*.example.com", "example.com", "*"). Case-insensitive, port ignored. */
export function hostGlob(glob: string): RegExp {
  const src = glob
    .toLowerCase()
    .split("*")
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^]*");
  return new RegExp(`^${src}$`);
}

/** Merges constructor defaults and a listener's options. `connectTimeout` falls back to `connect`. */
export function resolveListenerOptions(
  where: string,
  defaults: HttpListenerOptions,
  listener: Record<string, unknown> | undefined,
  connectTimeout: number,
): ResolvedListenerOptions {
  if (listener !== undefined) rejectUnknown(where, listener, LISTENER_KEYS);
  rejectUnknown(where, defaults as Record<string, unknown>, LISTENER_KEYS);
  const o = { ...(defaults as Record<string, unknown>), ...listener };
  const base: ResolvedRequestOptions = {
    connectTimeout,
    upstreamHeadersTimeout: 30_000,
    bodyTimeout: 60_000,
    requestTimeout: 0,
    maxBodySize: 0,
    expectContinue: "relay",
    expectContinueTimeout: 1000,
    pool: DEFAULT_POOL,
    errorBodies: undefined,
  };
  const req = requestOptions(where, o, base);
  const hosts = o.hosts;
  if (hosts !== undefined && (!Array.isArray(hosts) || hosts.some((h) => typeof h !== "string"))) {
    throw new ConfigError(`${where}: hosts must be a list of host globs`);
  }
  const normalizePath = o.normalizePath ?? true;
  if (typeof normalizePath !== "boolean") throw new ConfigError(`${where}: normalizePath must be true or false`);
  const maxHeaderSize = Math.max(64, num(where, "maxHeaderSize", o.maxHeaderSize, 16_384));
  const maxHeaderCount = num(where, "maxHeaderCount", o.maxHeaderCount, 100);
  const maxUrlLength = num(where, "maxUrlLength", o.maxUrlLength, 8_192);
  return {
    ...req,
    headersTimeout: num(where, "headersTimeout", o.headersTimeout, 10_000),
    keepAliveTimeout: num(where, "keepAliveTimeout", o.keepAliveTimeout, 5_000),
    maxHeaderSize,
    maxHeaderCount,
    maxUrlLength,
    maxRequestsPerConnection: num(where, "maxRequestsPerConnection", o.maxRequestsPerConnection, 0),
    hosts: hosts === undefined ? undefined : (hosts as string[]).map(hostGlob),
    lingerTimeout: num(where, "lingerTimeout", o.lingerTimeout, 2_000),
    normalizePath,
    requestLimits: { maxHeaderSize, maxHeaderCount, maxUrlLength, strict: true },
    route: { ...req, stripPrefix: false, rewrite: undefined },
  };
}

const routeCache = new WeakMap<Route, { base: ResolvedListenerOptions; resolved: ResolvedRouteOptions }>();

function routeOptions(where: string, o: Record<string, unknown>, base: ResolvedListenerOptions): ResolvedRouteOptions {
  const strip = o.stripPrefix ?? false;
  if (typeof strip !== "boolean" && typeof strip !== "string") throw new ConfigError(`${where}: stripPrefix must be a boolean or a string`);
  if (o.rewrite !== undefined && typeof o.rewrite !== "string") throw new ConfigError(`${where}: rewrite must be a string`);
  return { ...requestOptions(where, o, base), stripPrefix: strip, rewrite: o.rewrite as string | undefined };
}

/** Throws `ConfigError` for a bad value among the HTTP keys of `route.options` (other keys are plugins'). */
export function checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string, base: ResolvedListenerOptions): void {
  routeOptions(where, options, base);
}

/** A route's options on top of the listener's, cached per route and listener options. */
export function resolveRouteOptions(route: Route, base: ResolvedListenerOptions): ResolvedRouteOptions {
  const cached = routeCache.get(route);
  if (cached !== undefined && cached.base === base) return cached.resolved;
  const o = route.options as Record<string, unknown>;
  const resolved = !o || Object.keys(o).length === 0 ? base.route : routeOptions(`route "${route.name}"`, o, base);
  routeCache.set(route, { base, resolved });
  return resolved;
}
