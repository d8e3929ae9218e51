import {
  getHeader,
  getHeaders,
  isHttpRequest,
  isHttpResponse,
  removeHeader,
  setHeader,
  Stage,
  type HttpRequestMessage,
  type HeaderPairs,
  type HttpUpstreamResponse,
  type Proxy,
  type ProxyPlugin,
  type ProxyRequest,
  type Route,
  type Target,
} from "@switchyard/core";
import { appendForwarded, formatForwarded } from "./forwarded.js";
import { forwardedFor } from "./forwarded-for.js";
import { stripHopByHop } from "./hop-by-hop.js";
import { formatHostHeader, targetScheme } from "./host.js";
import {
  resolveOptions,
  resolveRouteOptions,
  type HeadersOptions,
  type ResolvedHeadersOptions,
  type RouteHeadersOptions,
} from "./options.js";
import { applyRules } from "./rules.js";
import { appendVia, viaEntry, viaHasLoop } from "./via.js";

const PLUGIN_NAME = "HeadersPlugin";

/**
 * RFC-correct header rewriting for HTTP: hop-by-hop stripping in both directions,
 * X-Forwarded-*, RFC 7239 Forwarded, Via with loop detection (508), Host rewriting and
 * declarative per-route rules.
 *
 * Taps `onRequest` and `onUpstreamResponse` at `Stage.NORMALIZE`, so taps at `Stage.TRANSFORM`
 * (the default) already see cleaned headers.
 */
export class HeadersPlugin implements ProxyPlugin {
  readonly name = PLUGIN_NAME;
  #opts: ResolvedHeadersOptions;
  /** parsed `route.options.headers`, per route object (routes are immutable) */
  #routeCache = new WeakMap<Route, RouteHeadersOptions>();

  /** this hop's Via entries for HTTP/1.1 and HTTP/1.0, built once per options */
  #via11 = "";
  #via10 = "";

  /** the key of `route.options` it reads */
  readonly routeOptions = ["headers"] as const;

  constructor(options: HeadersOptions = {}) {
    this.#opts = resolveOptions(options);
    this.#viaEntries();
  }

  /** Throws `ConfigError` when `options.headers` of a route is invalid (checked before the route is used). */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    resolveRouteOptions(options.headers, where);
  }

  #viaEntries(): void {
    this.#via11 = viaEntry("1.1", this.#opts.pseudonym);
    this.#via10 = viaEntry("1.0", this.#opts.pseudonym);
  }

  #via(httpVersion: string): string {
    if (httpVersion === "1.1") return this.#via11;
    if (httpVersion === "1.0") return this.#via10;
    return viaEntry(httpVersion, this.#opts.pseudonym);
  }

  /** Takes new options on a config reload; applies to the next message. Throws ConfigError when invalid. */
  reconfigure(options: unknown): void {
    this.#opts = resolveOptions((options ?? {}) as HeadersOptions);
    this.#routeCache = new WeakMap();
    this.#viaEntries();
  }

  apply(proxy: Proxy): void {
    proxy.hooks.onRequest.tap({ name: PLUGIN_NAME, stage: Stage.NORMALIZE }, (req) => {
      if (isHttpRequest(req) && req.response === undefined) this.#onRequest(req);
      return req;
    });
    proxy.hooks.onUpstreamResponse.tap({ name: PLUGIN_NAME, stage: Stage.NORMALIZE }, (res, req) => {
      if (isHttpResponse(res) && res.error === undefined && res.status !== undefined) this.#onResponse(res, req);
      return res;
    });
  }

  #routeOptions(route: Route | undefined): RouteHeadersOptions | undefined {
    if (!route) return undefined;
    let r = this.#routeCache.get(route);
    if (!r) {
      r = resolveRouteOptions(route.options?.headers, `route "${route.name}": options`);
      this.#routeCache.set(route, r);
    }
    return r;
  }

  #onRequest(req: HttpRequestMessage): void {
    const o = this.#opts;
    const h = req.headers;
    if (o.via && o.loopDetection && viaHasLoop(h, o.pseudonym)) {
      req.respond(508, [["Content-Type", "text/plain; charset=utf-8"]], `Loop Detected: request already passed through ${o.pseudonym}\n`);
      return;
    }
    const originalHost = getHeader(h, "host");
    stripHopByHop(h, { tunnel: req.upgrade });

    const clientIp = req.connection.clientIp;
    const trusted = o.trusted?.matches(clientIp) ?? false;
    if (o.xForwarded) {
      const xff = forwardedFor(trusted ? getHeaders(h, "x-forwarded-for") : NONE, clientIp, trusted);
      // one pass for the four fields (setHeader semantics: first position kept, repeats dropped)
      // the edit records are shared (setFields is synchronous): no allocation per request
      const edits = XF_EDITS;
      edits[0]!.value = xff;
      edits[1]!.value = trusted ? KEEP : req.scheme;
      edits[2]!.value = trusted ? KEEP : originalHost;
      edits[3]!.value = trusted ? KEEP : portString(req.connection.localPort);
      setFields(h, edits);
      if (trusted) {
        if (!edits[1]!.seen) h.push(["X-Forwarded-Proto", req.scheme]);
        if (!edits[2]!.seen && originalHost !== undefined) h.push(["X-Forwarded-Host", originalHost]);
        if (!edits[3]!.seen) h.push(["X-Forwarded-Port", portString(req.connection.localPort)]);
      }
    }
    if (o.forwarded) {
      const element = formatForwarded({ for: clientIp, host: originalHost, proto: req.scheme });
      setHeader(h, "Forwarded", appendForwarded(getHeaders(h, "forwarded"), element, trusted));
    } else if (!trusted && o.xForwarded) {
      // not written here, but an untrusted client's own would reach backends that read RFC 7239
      removeHeader(h, "forwarded");
    }
    if (o.via) appendVia(h, this.#via(req.httpVersion));

    const routeOpts = this.#routeOptions(req.route);
    const rewrite = routeOpts?.rewriteHost ?? o.rewriteHost;
    if (rewrite !== false) {
      const value = typeof rewrite === "string" ? rewrite : hostForTarget(req);
      if (value !== undefined) setHeader(h, "Host", value);
      // a retry on another target gets that target's Host (protocol-http's per-attempt callback)
      if (rewrite === true && "onRetarget" in req) (req as RetargetableRequest).onRetarget = retargetHost;
    }

    applyRules(h, o.request);
    if (req.route) applyRules(h, o.routes.get(req.route.name)?.request);
    applyRules(h, routeOpts?.request);
  }

  #onResponse(res: HttpUpstreamResponse, req: ProxyRequest | undefined): void {
    const o = this.#opts;
    stripHopByHop(res.headers, { tunnel: res.status === 101 });
    if (o.via) appendVia(res.headers, this.#via(res.httpVersion ?? "1.1"));
    applyRules(res.headers, o.response);
    const route = req?.route;
    if (route) {
      applyRules(res.headers, o.routes.get(route.name)?.response);
      applyRules(res.headers, this.#routeOptions(route)?.response);
    }
  }
}

const NONE: readonly string[] = [];

/** the decimal form of the last local port seen (a listener's port rarely changes) */
let lastPort = -1;
let lastPortString = "";
function portString(port: number): string {
  if (port !== lastPort) {
    lastPort = port;
    lastPortString = String(port);
  }
  return lastPortString;
}

/** protocol-http's HttpRequest: `onRetarget` runs when a retry moves the request to another target. */
interface RetargetableRequest {
  onRetarget: ((target: Target, headers: HeaderPairs) => void) | undefined;
}

/** `rewriteHost: true` for the target of a retry (one shared function, no per-request closure). */
function retargetHost(target: Target, headers: HeaderPairs): void {
  setHeader(headers, "Host", formatHostHeader(target.host, target.port, targetScheme(target)));
}
/** a FieldEdit value that keeps the field as it is (trusted peer) */
const KEEP = "\0keep";

interface FieldEdit {
  readonly lower: string;
  readonly name: string;
  /** new value; undefined removes the field; KEEP leaves it */
  value: string | undefined;
  seen: boolean;
}

const XF_EDITS: FieldEdit[] = [
  { lower: "x-forwarded-for", name: "X-Forwarded-For", value: undefined, seen: false },
  { lower: "x-forwarded-proto", name: "X-Forwarded-Proto", value: undefined, seen: false },
  { lower: "x-forwarded-host", name: "X-Forwarded-Host", value: undefined, seen: false },
  { lower: "x-forwarded-port", name: "X-Forwarded-Port", value: undefined, seen: false },
];

/**
 * `setHeader`/`removeHeader` for several fields in one pass over the list: the first
 * occurrence takes the new value in place, later ones are dropped, absent fields are appended.
 */
function setFields(h: HeaderPairs, edits: FieldEdit[]): void {
  for (const e of edits) e.seen = false;
  let w = 0;
  for (let r = 0; r < h.length; r++) {
    const pair = h[r]!;
    const name = pair[0];
    let edit: FieldEdit | undefined;
    if (name.length >= 15 && name.length <= 17 && (name.charCodeAt(0) | 32) === 120 /* x */) {
      const lower = name.toLowerCase();
      for (const e of edits) if (e.lower === lower) edit = e;
    }
    if (edit === undefined) {
      h[w++] = pair;
      continue;
    }
    if (edit.value === KEEP) {
      edit.seen = true;
      h[w++] = pair;
      continue;
    }
    if (edit.seen || edit.value === undefined) {
      edit.seen = true;
      continue;
    }
    edit.seen = true;
    h[w++] = [name, edit.value];
  }
  h.length = w;
  for (const e of edits) if (!e.seen && e.value !== undefined && e.value !== KEEP) h.push([e.name, e.value]);
}

/**
 * The Host for `rewriteHost: true`: the message's chosen target, else the route's target when
 * the route has one (or all its targets share one authority). Undefined leaves Host as is.
 */
function hostForTarget(req: ProxyRequest): string | undefined {
  const pick = (t: Target) => formatHostHeader(t.host, t.port, targetScheme(t));
  if (req.target) return pick(req.target);
  const targets = req.route?.targets ?? [];
  const values = new Set(targets.map(pick));
  return values.size === 1 ? [...values][0] : undefined;
}
