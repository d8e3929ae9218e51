/**
 * The client identity a TLS client certificate carries: read once after each TLS upgrade of a
 * client socket (TLS listeners, PostgreSQL/MySQL SSL, SMTP STARTTLS) into `conn.info.identity`,
 * where routes (`clientSubject`, `clientSan`), plugins (plugin-mtls) and logs find it.
 */
import { X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { ClientIdentity, ClientSans } from "./vocabulary.js";

export type { ClientIdentity, ClientSans };

/**
 * How a TLS listener treats client certificates (nginx's `ssl_verify_client`):
 * - `"required"`: a client without a certificate fails the handshake; one whose certificate does
 *   not verify (unknown CA, expired, revoked by `crl`) is closed right after it, before routing;
 * - `"optional"`: a certificate is asked for but may be absent; one that fails verification is
 *   kept, with `identity.verified` false and the reason in `identity.verifyError`: it fills no
 *   route key, and plugin-mtls refuses it (HTTP 495, other protocols their "forbidden" answer);
 * - `"optional-no-ca"`: as `"optional"`, but a certificate whose only fault is an issuer the
 *   listener does not trust is `tolerated` (its identity is passed on, marked unverified), for a
 *   backend that does the verification itself.
 */
export type VerifyClientMode = "required" | "optional" | "optional-no-ca";
export const VERIFY_CLIENT_MODES: readonly VerifyClientMode[] = ["required", "optional", "optional-no-ca"];

/** OpenSSL verification results that mean only "the issuer is not one the listener trusts". */
const UNKNOWN_ISSUER: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_UNTRUSTED",
]);

/** true when `mode` lets a certificate with this verification failure through, unverified */
export function toleratedFailure(mode: VerifyClientMode, code: string): boolean {
  return mode === "optional-no-ca" && UNKNOWN_ISSUER.has(code);
}

/** The certificate part of an identity, from one certificate (also what `certs inspect` prints). */
export type CertificateDescription = Omit<ClientIdentity, "verified" | "verifyError" | "tolerated" | "chain">;

/**
 * Describes one X.509 certificate: RFC 4514 subject and issuer, SANs by type, serial, validity
 * (ISO 8601) and SHA-256 fingerprint (lowercase hex, no separators, as Envoy's XFCC `Hash`).
 */
export function describeCertificate(cert: X509Certificate | Buffer | string): CertificateDescription {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const subject = rfc4514(x.subject);
  return {
    subject,
    commonName: commonNameOf(x.subject),
    issuer: rfc4514(x.issuer),
    sans: parseSubjectAltName(x.subjectAltName),
    serialNumber: x.serialNumber.toLowerCase(),
    validFrom: new Date(x.validFrom).toISOString(),
    validTo: new Date(x.validTo).toISOString(),
    fingerprint256: x.fingerprint256.replace(/:/g, "").toLowerCase(),
    der: x.raw,
  };
}

/**
 * Node prints a name one attribute per line, most significant first, values already escaped as
 * RFC 2253 asks; RFC 4514 wants them least significant first, separated by commas.
 */
function rfc4514(multiline: string): string {
  return multiline === "" ? "" : multiline.split("\n").reverse().join(",");
}

function commonNameOf(multiline: string): string | undefined {
  for (const line of multiline.split("\n")) if (line.startsWith("CN=")) return line.slice(3);
  return undefined;
}

/**
 * Node's `subjectAltName` text: `DNS:a.example, URI:spiffe://td/x, email:a@b, IP Address:::1`.
 * A value holding a comma or a quote is written as a JSON string (Node ≥ 17.3), so it is read as
 * one here; other entry types (othername, DirName, …) are left out.
 */
export function parseSubjectAltName(text: string | undefined): ClientSans {
  const sans = { dns: [] as string[], uri: [] as string[], email: [] as string[], ip: [] as string[] };
  if (!text) return sans;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const type = text.slice(i, colon).trim();
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 2, j);
      }
      next = text.indexOf(",", j);
    } else {
      next = text.indexOf(", ", colon);
      value = text.slice(colon + 1, next < 0 ? undefined : next);
    }
    if (type === "DNS") sans.dns.push(value);
    else if (type === "URI") sans.uri.push(value);
    else if (type === "email") sans.email.push(value);
    else if (type === "IP Address") sans.ip.push(value);
    if (next < 0) break;
    i = next + (text[next + 1] === " " ? 2 : 1);
  }
  return sans;
}

/**
 * The identity of the certificate the client presented on `socket`, or undefined when it sent
 * none. `verifyError` is OpenSSL's verdict on its chain (null: verified).
 */
export function readClientIdentity(socket: TLSSocket, verifyError: string | null, mode: VerifyClientMode): ClientIdentity | undefined {
  const x = socket.getPeerX509Certificate();
  if (x === undefined) return undefined;
  const chain: Buffer[] = [];
  // the rest of the chain the handshake saw: leaf and self-signed trust anchor excluded
  let c = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  for (let n = 0; n < 10 && c?.issuerCertificate && c.issuerCertificate !== c; n++) {
    c = c.issuerCertificate as typeof c;
    if (c?.raw && c.issuerCertificate !== c) chain.push(c.raw);
  }
  return Object.freeze({
    verified: verifyError === null,
    verifyError: verifyError ?? undefined,
    tolerated: verifyError !== null && toleratedFailure(mode, verifyError),
    ...describeCertificate(x),
    chain,
  });
}

/**
 * The route-key fields of an identity: `clientSubject` (the RFC 4514 subject) and `clientSan`
 * (URI, DNS, email then IP SANs, each alone, newline-separated for the route table's "any of"
 * matching; see route-table). Only a verified identity routes.
 */
export function identityKeyFields(identity: ClientIdentity | undefined): { clientSubject?: string; clientSan?: string } {
  if (identity === undefined || !identity.verified) return {};
  const s = identity.sans;
  const all = [...s.uri, ...s.dns, ...s.email, ...s.ip];
  return { clientSubject: identity.subject, ...(all.length > 0 ? { clientSan: all.join("\n") } : {}) };
}

/** What logs say of a client certificate: who, whether it verified (and why not), which one. */
export function identitySummary(id: ClientIdentity): Record<string, unknown> {
  return { subject: id.subject, issuer: id.issuer, verified: id.verified, ...(id.verifyError ? { verifyError: id.verifyError } : {}), serial: id.serialNumber, fingerprint256: id.fingerprint256 };
}
