/**
 * Who may use a route: a client identity against a route's `options.mtls`, and the verdicts the
 * plugin turns into each protocol's answer.
 */
import type { ClientIdentity } from "@switchyard/core";
import type { ResolvedRouteMtls } from "./options.js";

/**
 * Why a client is refused: `"no-certificate"` (HTTP 496), `"unverified"` (the certificate failed
 * verification, HTTP 495), `"not-allowed"` (verified, but not on the route's lists, HTTP 403).
 */
export type Verdict = "no-certificate" | "unverified" | "not-allowed";

export const HTTP_STATUS: Readonly<Record<Verdict, number>> = { "no-certificate": 496, unverified: 495, "not-allowed": 403 };

/** A certificate that failed verification and that the listener's mode does not let through. */
export function refusedAsUnverified(identity: ClientIdentity | undefined): boolean {
  return identity !== undefined && !identity.verified && !identity.tolerated;
}

/** undefined when `identity` may use a route with these lists; else why not. */
export function checkRoute(rules: ResolvedRouteMtls, identity: ClientIdentity | undefined): Verdict | undefined {
  if (identity === undefined) return "no-certificate";
  // allow-lists name verified identities only: an unknown issuer could claim any name
  if (!identity.verified) return "unverified";
  if (rules.subjects && !rules.subjects.some((g) => g.match(identity.subject))) return "not-allowed";
  if (rules.sans) {
    const s = identity.sans;
    const all = [...s.uri, ...s.dns, ...s.email, ...s.ip];
    if (!all.some((v) => rules.sans!.some((g) => g.match(v)))) return "not-allowed";
  }
  if (rules.fingerprints && !rules.fingerprints.has(identity.fingerprint256)) return "not-allowed";
  return undefined;
}
