/**
 * What `switchyard certs inspect` prints of a certificate file.
 */
import { X509Certificate } from "node:crypto";
import { describeCertificate, type CertificateDescription } from "@switchyard/core";

export type CertificateSummary = Omit<CertificateDescription, "der"> & { readonly isCa: boolean; readonly fingerprint256Colons: string };

/** Reads a PEM (or DER) certificate: subject, issuer, SANs, serial, validity, SHA-256 fingerprint. */
export function inspectCertificate(pemOrDer: string | Buffer): CertificateSummary {
  const x = new X509Certificate(pemOrDer);
  const { der: _der, ...d } = describeCertificate(x);
  return { ...d, isCa: x.ca, fingerprint256Colons: d.fingerprint256.toUpperCase().replace(/(..)(?!$)/g, "$1:") };
}

/** The summary as the lines `certs inspect` prints. */
export function formatCertificateSummary(s: CertificateSummary): string {
  const sans = [...s.sans.dns.map((v) => `DNS:${v}`), ...s.sans.ip.map((v) => `IP:${v}`), ...s.sans.uri.map((v) => `URI:${v}`), ...s.sans.email.map((v) => `email:${v}`)];
  return [
    `subject:     ${s.subject}`,
    `issuer:      ${s.issuer}`,
    `SANs:        ${sans.length > 0 ? sans.join(", ") : "(none)"}`,
    `serial:      ${s.serialNumber}`,
    `valid from:  ${s.validFrom}`,
    `valid to:    ${s.validTo}`,
    `CA:          ${s.isCa ? "yes" : "no"}`,
    `SHA-256:     ${s.fingerprint256Colons}`,
  ].join("\n");
}
