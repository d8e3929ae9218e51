/**
 * Options of the mTLS plugin and of a route's `options.mtls`, checked and resolved once.
 */
import { compileGlob, ConfigError, IpMatcher, type GlobMatcher } from "@switchyard/core";

/** How the client identity goes to HTTP backends. */
export interface ForwardClientCertOptions {
  /** `"xfcc"`: Envoy's `x-forwarded-client-cert`; `"rfc9440"`: `Client-Cert` / `Client-Cert-Chain` */
  format: "xfcc" | "rfc9440";
  /**
   * what happens to a header the client sent under those names (always removed from peers
   * outside `trustedProxies`):
   * - `"sanitize"` (default): removed; the proxy's own value is set;
   * - `"append"`: a trusted peer's value is kept and the proxy's element appended (xfcc; for
   *   rfc9440, which holds one certificate, a trusted peer's value is kept as it is);
   * - `"forward"`: a trusted peer's value is passed on unchanged; the proxy sets its own only
   *   when the trusted peer sent none.
   */
  mode?: "sanitize" | "append" | "forward";
}

export interface MtlsOptions {
  /** forward the verified client identity to HTTP backends (default: not forwarded) */
  forwardClientCert?: ForwardClientCertOptions;
  /** IPs / CIDRs of proxies in front of this one whose forwarded-certificate headers are trusted */
  trustedProxies?: string[];
  /**
   * refuse, on every route, a client whose certificate failed verification on an `"optional"`
   * listener (HTTP 495; other protocols their "forbidden" answer), as nginx does (default true);
   * an `"optional-no-ca"` listener's tolerated certificates pass
   */
  refuseUnverified?: boolean;
}

/** A route's `options.mtls`: who may use the route. Every list given must match. */
export interface RouteMtlsOptions {
  /** globs over the RFC 4514 subject (`CN=alice,O=Tenant A`, `CN=*,O=Tenant A`) */
  allowSubjects?: string[];
  /** globs over the SANs: URIs (`spiffe://prod.example/ns/*`), DNS names, emails, IPs */
  allowSans?: string[];
  /** SHA-256 fingerprints, hex, with or without colons, any case */
  allowFingerprints?: string[];
}

export interface ResolvedOptions {
  readonly forward: { readonly format: "xfcc" | "rfc9440"; readonly mode: "sanitize" | "append" | "forward" } | undefined;
  readonly trusted: IpMatcher | undefined;
  readonly refuseUnverified: boolean;
}

export interface ResolvedRouteMtls {
  readonly subjects: readonly GlobMatcher[] | undefined;
  readonly sans: readonly GlobMatcher[] | undefined;
  readonly fingerprints: ReadonlySet<string> | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function known(where: string, o: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new ConfigError(`${where}: unknown key "${k}" (known: ${keys.join(", ")})`);
}

function stringList(where: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s === "")) throw new ConfigError(`${where} must be a list of non-empty strings`);
  return v as string[];
}

export function resolveOptions(options: MtlsOptions, where = "MtlsPlugin"): ResolvedOptions {
  if (!isObject(options)) throw new ConfigError(`${where}: options must be an object`);
  known(where, options, ["forwardClientCert", "trustedProxies", "refuseUnverified"]);
  let forward: ResolvedOptions["forward"];
  const f = options.forwardClientCert as unknown;
  if (f !== undefined) {
    if (!isObject(f)) throw new ConfigError(`${where}.forwardClientCert must be an object`);
    known(`${where}.forwardClientCert`, f, ["format", "mode"]);
    if (f["format"] !== "xfcc" && f["format"] !== "rfc9440") throw new ConfigError(`${where}.forwardClientCert.format must be "xfcc" or "rfc9440"`);
    const mode = f["mode"] ?? "sanitize";
    if (mode !== "sanitize" && mode !== "append" && mode !== "forward") throw new ConfigError(`${where}.forwardClientCert.mode must be "sanitize", "append" or "forward"`);
    forward = { format: f["format"], mode };
  }
  const proxies = stringList(`${where}.trustedProxies`, options.trustedProxies);
  let trusted: IpMatcher | undefined;
  try {
    trusted = proxies && proxies.length > 0 ? new IpMatcher(proxies) : undefined;
  } catch (err) {
    throw new ConfigError(`${where}.trustedProxies: ${(err as Error).message}`, { cause: err });
  }
  if (options.refuseUnverified !== undefined && typeof options.refuseUnverified !== "boolean") throw new ConfigError(`${where}.refuseUnverified must be a boolean`);
  return { forward, trusted, refuseUnverified: options.refuseUnverified ?? true };
}

/** `options.mtls` of a route, compiled; undefined when the route has none. Throws ConfigError. */
export function resolveRouteMtls(value: unknown, where: string): ResolvedRouteMtls | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new ConfigError(`${where} must be an object`);
  known(where, value, ["allowSubjects", "allowSans", "allowFingerprints"]);
  const subjects = stringList(`${where}.allowSubjects`, value["allowSubjects"]);
  const sans = stringList(`${where}.allowSans`, value["allowSans"]);
  const fingerprints = stringList(`${where}.allowFingerprints`, value["allowFingerprints"]);
  for (const fp of fingerprints ?? []) {
    if (!/^[0-9a-fA-F]{64}$/.test(fp.replace(/:/g, ""))) throw new ConfigError(`${where}.allowFingerprints: "${fp}" is not a SHA-256 fingerprint`);
  }
  return {
    subjects: subjects?.map(compileGlob),
    sans: sans?.map(compileGlob),
    fingerprints: fingerprints ? new Set(fingerprints.map((fp) => fp.replace(/:/g, "").toLowerCase())) : undefined,
  };
}
