import {
  isHttpRequest,
  ResolveError,
  Stage,
  type ClientIdentity,
  type Proxy,
  type ProxyPlugin,
  type ProxyRequest,
  type Route,
  type RoutedRequest,
} from "@switchyard/core";
import { checkRoute, HTTP_STATUS, refusedAsUnverified, type Verdict } from "./authorize.js";
import { forwardClientCert } from "./forward-client-cert.js";
import { resolveOptions, resolveRouteMtls, type MtlsOptions, type ResolvedOptions, type ResolvedRouteMtls } from "./options.js";

const PLUGIN_NAME = "MtlsPlugin";

/** route objects are immutable: their compiled `options.mtls` (null: the route has none) */
type RouteRules = WeakMap<Route, ResolvedRouteMtls | null>;

/**
 * What to do with a client certificate's identity (verified by the listener's TLS, in core):
 * authorize per route (`options.mtls`), refuse failed certificates on `"optional"` listeners,
 * and forward the identity to HTTP backends (XFCC or RFC 9440).
 *
 * HTTP is checked in `onRequest` at `Stage.ACCESS` and answered with 403 / 495 / 496; every other
 * protocol in core's `onRouted`, refused with a `ResolveError` FORBIDDEN that each protocol
 * answers in its own terms (see the README's table).
 */
export class MtlsPlugin implements ProxyPlugin {
  readonly name = PLUGIN_NAME;
  readonly routeOptions = ["mtls"] as const;
  #opts: ResolvedOptions;
  readonly #rules: RouteRules = new WeakMap();

  constructor(options: MtlsOptions = {}) {
    this.#opts = resolveOptions(options);
  }

  /** Throws `ConfigError` when a route's `options.mtls` is invalid. */
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    resolveRouteMtls(options["mtls"], `${where}.mtls`);
  }

  /** New plugin options (a config reload); a bad value throws and changes nothing. */
  reconfigure(options: unknown): void {
    this.#opts = resolveOptions((options ?? {}) as MtlsOptions);
  }

  apply(proxy: Proxy): void {
    proxy.hooks.onRouted.tap({ name: PLUGIN_NAME, stage: Stage.ACCESS }, (req) => this.#checkRouted(req));
    proxy.hooks.onRequest.tap({ name: PLUGIN_NAME, stage: Stage.ACCESS }, (req) => this.#onRequest(req));
  }

  #rulesOf(route: Route | undefined): ResolvedRouteMtls | undefined {
    if (route === undefined) return undefined;
    let rules = this.#rules.get(route);
    if (rules === undefined) {
      rules = resolveRouteMtls(route.options["mtls"], `route "${route.name}": options.mtls`) ?? null;
      this.#rules.set(route, rules);
    }
    return rules ?? undefined;
  }

  /** the verdict for a client on a route, or undefined when it may go on */
  #verdict(route: Route | undefined, identity: ClientIdentity | undefined): Verdict | undefined {
    if (this.#opts.refuseUnverified && refusedAsUnverified(identity)) return "unverified";
    const rules = this.#rulesOf(route);
    return rules === undefined ? undefined : checkRoute(rules, identity);
  }

  /** L4 protocols (HTTP answers in onRequest, with its own statuses) */
  #checkRouted({ connection, match }: RoutedRequest): ResolveError | undefined {
    if (connection.listener.protocol === "http") return undefined;
    const verdict = this.#verdict(match.route, connection.identity);
    if (verdict === undefined) return undefined;
    connection.context.logger.info("client certificate refused", { id: connection.id, route: match.route.name, verdict, ...subjectOf(connection.identity) });
    return new ResolveError("FORBIDDEN", `client certificate: ${verdict}`);
  }

  #onRequest(req: ProxyRequest): ProxyRequest {
    if (!isHttpRequest(req)) return req;
    const identity = req.connection.identity;
    const verdict = this.#verdict(req.route, identity);
    if (verdict !== undefined) {
      req.respond(HTTP_STATUS[verdict]);
      return req;
    }
    const f = this.#opts.forward;
    if (f !== undefined) {
      const trustedPeer = this.#opts.trusted?.matches(req.connection.clientIp) === true;
      // only an identity the listener verified (or, optional-no-ca, tolerated) is vouched for
      const usable = identity !== undefined && (identity.verified || identity.tolerated) ? identity : undefined;
      forwardClientCert(req.headers, usable, f.format, f.mode, trustedPeer);
    }
    return req;
  }
}

function subjectOf(identity: ClientIdentity | undefined): Record<string, string> {
  return identity ? { subject: identity.subject, fingerprint256: identity.fingerprint256 } : {};
}
