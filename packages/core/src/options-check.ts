/**
 * Checks the protocol- and plugin-specific `options` of listeners and routes before anything
 * uses them, so a misspelt or badly typed option fails `new Proxy`, `setRoutes`, `addListener`,
 * `reconfigureListener` and `switchyard check` — not the first connection that reads it.
 *
 * A listener's `options` belong to its protocol alone (`checkListenerOptions`). A route's
 * `options` are shared: the protocols of the listeners the route reaches and every plugin each
 * check what they read (`checkRouteOptions`) and declare which keys they read (`routeOptions`);
 * a key nobody declares is reported as unknown.
 */
import { ConfigError, ResolveError } from "./errors.js";
import type { Logger, ProtocolHandler, ProxyPlugin, RouteOptionsReader } from "./plugin.js";
import type { Route } from "./routing/route.js";
import type { ListenerConfig, ListenerTls, RouteConfig } from "./types.js";
import { VERIFY_CLIENT_MODES } from "./client-identity.js";
import type { RouteKey } from "./vocabulary.js";
import { proxyProtocolProblems } from "./proxy-protocol-accept.js";

/** `where` labels for problem lines (core names things; the CLI uses config paths). */
export interface OptionsCheckLabels {
  listener(listener: Readonly<ListenerConfig>, index: number): string;
  route(route: Readonly<RouteConfig>, index: number): string;
  /** the label of a listener's `tls` (default `listener "name": tls`) */
  listenerTls?(listener: Readonly<ListenerConfig>, index: number): string;
}

const defaultLabels: OptionsCheckLabels = {
  listener: (l) => `listener "${l.name}": options`,
  listenerTls: (l) => `listener "${l.name}": tls`,
  route: (r, i) => `route "${r.name ?? `#${i}`}": options`,
};

/** The closest of `known` to `name` (case-insensitive, at most 2 edits), for "did you mean". */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase(), bestDistance);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance, giving up (returning `limit`) once it must reach `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row.push(v);
      if (v < rowMin) rowMin = v;
    }
    if (rowMin >= limit) return limit;
    prev = row;
  }
  return Math.min(prev[b.length]!, limit);
}

/** "unknown option "x"" with a suggestion when one of `known` is close. */
export function unknownOptionMessage(key: string, known: Iterable<string>): string {
  const near = closestName(key, known);
  return `unknown option "${key}"${near === undefined ? "" : ` (did you mean "${near}"?)`}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Protocols reached by a route: those of the listeners it names, or of every listener.
 * undefined when one of them is not registered or not there (nobody can tell which keys it would read).
 */
function protocolsOf(
  route: Readonly<RouteConfig>,
  listeners: readonly Readonly<ListenerConfig>[],
  protocols: ReadonlyMap<string, ProtocolHandler>,
): ProtocolHandler[] | undefined {
  const names = route.listener === undefined ? undefined : new Set([route.listener].flat());
  // a route may name a listener that is added later (a reload sets routes first); addListener checks it then
  if (names !== undefined && [...names].some((n) => !listeners.some((l) => l.name === n))) return undefined;
  const out = new Set<ProtocolHandler>();
  for (const l of listeners) {
    if (names !== undefined && !names.has(l.name)) continue;
    const p = protocols.get(l.protocol);
    if (p === undefined) return undefined;
    out.add(p);
  }
  return [...out];
}

const TLS_VERSIONS: readonly string[] = ["TLSv1.2", "TLSv1.3"];

/**
 * One line per bad value among a listener's `tls` version and cipher settings (`minVersion`,
 * `ciphers`, `honorCipherOrder`); `where` starts each line (`listener "web": tls`). A cipher
 * string OpenSSL does not know is reported when the certificates are loaded.
 */
export function listenerTlsProblems(tls: Readonly<ListenerTls> | undefined, where: string): string[] {
  if (tls === undefined || tls === null || typeof tls !== "object") return [];
  const problems: string[] = [];
  if (tls.minVersion !== undefined && !TLS_VERSIONS.includes(tls.minVersion)) {
    problems.push(`${where}.minVersion must be ${TLS_VERSIONS.map((v) => `"${v}"`).join(" or ")}, got ${JSON.stringify(tls.minVersion)}`);
  }
  if (tls.ciphers !== undefined && (typeof tls.ciphers !== "string" || tls.ciphers.trim() === "")) {
    problems.push(`${where}.ciphers must be a non-empty string (an OpenSSL cipher list)`);
  }
  if (tls.honorCipherOrder !== undefined && typeof tls.honorCipherOrder !== "boolean") {
    problems.push(`${where}.honorCipherOrder must be a boolean`);
  }
  problems.push(...clientCertificateProblems(tls, where));
  return problems;
}

const isPem = (v: unknown): boolean => typeof v === "string" || Buffer.isBuffer(v);

/** The client-certificate settings of a listener's `tls`: `verifyClient`, `crl`, and the `ca` they need. */
function clientCertificateProblems(tls: Readonly<ListenerTls>, where: string): string[] {
  const problems: string[] = [];
  const mode = tls.verifyClient;
  if (mode !== undefined && !VERIFY_CLIENT_MODES.includes(mode)) {
    problems.push(`${where}.verifyClient must be ${VERIFY_CLIENT_MODES.map((v) => `"${v}"`).join(", ")}, got ${JSON.stringify(mode)}`);
  }
  if (tls.crl !== undefined && !(isPem(tls.crl) || (Array.isArray(tls.crl) && tls.crl.length > 0 && tls.crl.every(isPem)))) {
    problems.push(`${where}.crl must be PEM text (or a list of them)`);
  }
  const verifies = (mode !== undefined && mode !== "optional-no-ca") || (mode === undefined && tls.requestCert === true);
  if (verifies && tls.ca === undefined) problems.push(`${where}.ca is needed to verify client certificates (or use verifyClient: "optional-no-ca")`);
  if (tls.crl !== undefined && !verifies && mode !== "optional-no-ca") problems.push(`${where}.crl is used only with verifyClient`);
  return problems;
}

/** One line per problem in a listener's `options` (empty: fine, or its protocol is unknown). */
export function listenerOptionProblems(
  listener: Readonly<ListenerConfig>,
  protocol: ProtocolHandler | undefined,
  where: string,
): string[] {
  if (protocol === undefined) return []; // listen() reports a protocol nobody registered
  const options = listener.options ?? {};
  if (protocol.checkListenerOptions === undefined) {
    return Object.keys(options).map((k) => `${where}: ${unknownOptionMessage(k, [])} (protocol "${protocol.name}" takes no listener options)`);
  }
  try {
    protocol.checkListenerOptions(options, where);
    return [];
  } catch (err) {
    return [messageOf(err)];
  }
}

type RouteWithOptions = { readonly options?: Readonly<Record<string, unknown>> | undefined };

function optionsOf(route: RouteWithOptions): Readonly<Record<string, unknown>> | undefined {
  const options = route.options;
  return options === undefined || options === null || typeof options !== "object" ? undefined : options; // the route table reports a non-object
}

/** One line per key of a route's `options` that none of `readers` declares. */
export function unknownRouteOptions(route: RouteWithOptions, readers: readonly RouteOptionsReader[], where: string): string[] {
  const options = optionsOf(route);
  if (options === undefined) return [];
  const known = new Set<string>();
  for (const r of readers) for (const k of r.routeOptions ?? []) known.add(k);
  return Object.keys(options)
    .filter((k) => !known.has(k))
    .map((k) => `${where}: ${unknownOptionMessage(k, known)} — no protocol or plugin on this route reads it`);
}

/** One line per reader that finds a bad value in a route's `options`. */
export function routeOptionValueProblems(route: RouteWithOptions, readers: readonly RouteOptionsReader[], where: string): string[] {
  const options = optionsOf(route);
  if (options === undefined) return [];
  const problems: string[] = [];
  for (const r of readers) {
    if (r.checkRouteOptions === undefined) continue;
    try {
      r.checkRouteOptions(options, where);
    } catch (err) {
      problems.push(messageOf(err));
    }
  }
  return problems;
}

/** One line per problem in a route's `options`: unknown keys, then bad values. */
export function routeOptionProblems(route: RouteWithOptions, readers: readonly RouteOptionsReader[], where: string): string[] {
  return [...unknownRouteOptions(route, readers, where), ...routeOptionValueProblems(route, readers, where)];
}

/** Every problem in the options of `listeners` and `routes`, one line each. */
export function optionProblems(
  listeners: readonly Readonly<ListenerConfig>[],
  routes: readonly Readonly<RouteConfig>[],
  protocols: ReadonlyMap<string, ProtocolHandler>,
  plugins: readonly ProxyPlugin[],
  labels: OptionsCheckLabels = defaultLabels,
): string[] {
  const problems: string[] = [];
  listeners.forEach((l, i) => {
    problems.push(...listenerTlsProblems(l.tls, (labels.listenerTls ?? defaultLabels.listenerTls!)(l, i)));
    problems.push(...listenerOptionProblems(l, protocols.get(l.protocol), labels.listener(l, i)));
    // the listener's own proxyProtocol field, labelled like its options (`listeners[0].proxyProtocol`)
    problems.push(...proxyProtocolProblems(l, labels.listener(l, i).replace(/options$/, "proxyProtocol")));
  });
  // a protocol package is usually its own plugin too: it reads route options only where it serves
  const handlers = new Set<object>(protocols.values());
  const others = plugins.filter((p) => !handlers.has(p));
  routes.forEach((r, i) => {
    const reached = protocolsOf(r, listeners, protocols);
    if (reached === undefined) return; // listen() reports the missing protocol
    problems.push(...routeOptionProblems(r, [...reached, ...others], labels.route(r, i)));
  });
  return problems;
}

/** A proxy's options checks: against its protocols and plugins, remembering routes that passed. */
export class OptionsChecker {
  readonly #protocols: ReadonlyMap<string, ProtocolHandler>;
  readonly #plugins: readonly ProxyPlugin[];
  readonly #logger: Logger;
  /** route objects whose options passed (the route table's, and answers seen before) */
  readonly #checked = new WeakSet<Route>();

  /** `protocols` and `plugins` are read at each check (plugins register protocols when applied). */
  constructor(protocols: ReadonlyMap<string, ProtocolHandler>, plugins: readonly ProxyPlugin[], logger: Logger) {
    this.#protocols = protocols;
    this.#plugins = plugins;
    this.#logger = logger;
  }

  /**
   * Throws one `ConfigError` listing every problem in the options of `listeners` and `routes`
   * (unknown keys, bad values); on success `compiled` (the table built from `routes`) counts as
   * checked.
   */
  check(listeners: readonly Readonly<ListenerConfig>[], routes: readonly Readonly<RouteConfig>[], compiled: Iterable<Route> = []): void {
    const problems = optionProblems(listeners, routes, this.#protocols, this.#plugins);
    if (problems.length > 0) throw new ConfigError(problems.join("\n"));
    for (const r of compiled) this.#checked.add(r);
  }

  /**
   * A route answered at run time (a resolver, or a plugin's own `onResolve` tap) was not checked
   * with the config: its options are checked once, against the key's protocol and the plugins.
   * A bad value is the answerer's fault: `ResolveError` INTERNAL, and that connection or request
   * fails as any resolver failure does (the process goes on). An undeclared key is only logged:
   * resolvers may carry their own metadata.
   */
  checkAnswered(route: Route, key: RouteKey): void {
    if (this.#checked.has(route)) return;
    const protocol = this.#protocols.get(key.protocol);
    const handlers = new Set<object>(this.#protocols.values());
    const readers = [...(protocol ? [protocol] : []), ...this.#plugins.filter((p) => !handlers.has(p))];
    const where = `route "${route.name}": options`;
    const problems = routeOptionValueProblems(route, readers, where);
    if (problems.length > 0) {
      throw new ResolveError("INTERNAL", `answered route has bad options: ${problems.join("; ")}`);
    }
    this.#checked.add(route);
    const unknown = unknownRouteOptions(route, readers, where);
    if (unknown.length > 0) this.#logger.warn("route.unknown-options", { route: route.name, problems: unknown });
  }
}
