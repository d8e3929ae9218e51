import type { Readable } from "node:stream";
import type { ProxyError } from "./errors.js";
import type { HeaderPairs } from "./headers.js";
import type { Route } from "./routing/route.js";
import type { Target } from "./types.js";
import type { ConnectionInfo } from "./vocabulary.js";

export type { ConnectionInfo };

/** An answer a tap gives instead of going upstream. */
export interface DirectResponse {
  status: number;
  headers?: HeaderPairs;
  body?: string | Buffer;
}

/**
 * One L7 message on its way upstream (an HTTP request, an SMTP transaction). Carried through
 * `onRequest`, whose taps may change it, choose another `target`, or set `response` to answer
 * directly.
 */
export interface ProxyRequest {
  readonly protocol: string;
  readonly connection: ConnectionInfo;
  /** a per-message id, echoed in error bodies and logs */
  readonly id: string;
  route: Route | undefined;
  /** target chosen for this message; a tap may replace it */
  target: Target | undefined;
  /** set by a tap to answer without going upstream */
  response: DirectResponse | undefined;
  /** scratch space for plugins, keyed by plugin name */
  readonly meta: Record<string, unknown>;
}

/** The HTTP shape of a request in `onRequest` (protocol "http"). */
export interface HttpRequestMessage extends ProxyRequest {
  readonly protocol: "http";
  method: string;
  /**
   * request-target in origin form ("/path?q") as it goes upstream: normalised (RFC 3986
   * §6.2.2) unless the listener turned `normalizePath` off, then as the client sent it; after a
   * route's `stripPrefix` or `rewrite`. A tap may change it.
   */
  url: string;
  /**
   * the normalised path the route matched, without the query ("/admin" for "/x/../%61dmin/.?q"),
   * whatever the listener's `normalizePath` says and whatever taps do to `url`: the field for
   * access decisions ("*" for `OPTIONS *`)
   */
  readonly path: string;
  readonly httpVersion: "1.0" | "1.1";
  /** ordered raw pairs; edit with the helpers in headers.ts */
  headers: HeaderPairs;
  /** the request body stream, or null when the request has none */
  readonly body: Readable | null;
  /** declared body length, or undefined for chunked bodies */
  readonly bodyLength: number | undefined;
  /** an Upgrade request (WebSocket): after a 101 the connection becomes a tunnel */
  readonly upgrade: boolean;
  /** scheme the client used ("http" or "https") */
  readonly scheme: "http" | "https";
  /** true when the body is fully buffered (or absent) and can be sent again */
  readonly replayable: boolean;
  /**
   * Reads the body into memory if it is at most `maxBytes`, making the request replayable.
   * Resolves false (and leaves the body streaming) when it is larger.
   */
  bufferBody(maxBytes: number): Promise<boolean>;
  /** answer directly: shorthand for setting `response` */
  respond(status: number, headers?: HeaderPairs, body?: string | Buffer): void;
}

/**
 * One upstream answer, or the upstream failure, carried through `onUpstreamResponse`.
 * A tap may change it, or ask for another attempt by setting `retry` while `retryable` is true.
 */
export interface UpstreamResponse {
  readonly protocol: string;
  /** 1 for the first attempt */
  readonly attempt: number;
  readonly target: Target | undefined;
  /** the route the exchange belongs to (its options carry per-route retry settings) */
  readonly route?: Route | undefined;
  /** the failure when no answer came; undefined for a real answer */
  readonly error: ProxyError | undefined;
  /** false once anything went downstream for this exchange: a retry is no longer possible */
  readonly retryable: boolean;
  /** true when request bytes may have reached the upstream (false for connect failures) */
  readonly requestSent: boolean;
  /** set by a tap to ask for another attempt; `exclude` targets already tried */
  retry: RetryRequest | undefined;
}

export interface RetryRequest {
  delayMs: number;
  reason: string;
  /** try a different target of the route when there is one (default true) */
  otherTarget?: boolean;
}

/** The HTTP shape of `onUpstreamResponse` (protocol "http"). */
export interface HttpUpstreamResponse extends UpstreamResponse {
  readonly protocol: "http";
  status: number | undefined;
  statusMessage: string | undefined;
  httpVersion: "1.0" | "1.1" | undefined;
  headers: HeaderPairs;
  /** the response body stream, null when it has none */
  readonly body: Readable | null;
}

/** Narrowing helpers for taps that serve several protocols. */
export function isHttpRequest(req: ProxyRequest): req is HttpRequestMessage {
  return req.protocol === "http";
}
export function isHttpResponse(res: UpstreamResponse): res is HttpUpstreamResponse {
  return res.protocol === "http";
}
