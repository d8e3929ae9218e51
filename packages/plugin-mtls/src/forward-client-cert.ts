/**
 * The client identity as request headers for HTTP backends: Envoy's `x-forwarded-client-cert`
 * (XFCC) or RFC 9440's `Client-Cert` / `Client-Cert-Chain`.
 */
import { getHeaders, removeHeader, setHeader, type ClientIdentity, type HeaderPairs } from "@switchyard/core";

export const XFCC = "x-forwarded-client-cert";
export const CLIENT_CERT = "client-cert";
export const CLIENT_CERT_CHAIN = "client-cert-chain";

/** An XFCC value: quoted when it holds `,` `;` `=` `"` or spaces, inner quotes and backslashes escaped. */
function xfccValue(v: string): string {
  return /[,;="\s\\]/.test(v) ? `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"` : v;
}

/** One XFCC element: `Hash=<sha256 hex>;Subject="<RFC 4514>";URI=<uri>;DNS=<name>` (a pair per SAN). */
export function xfccElement(id: ClientIdentity): string {
  const parts = [`Hash=${id.fingerprint256}`, `Subject="${id.subject.replace(/[\\"]/g, (c) => `\\${c}`)}"`];
  for (const uri of id.sans.uri) parts.push(`URI=${xfccValue(uri)}`);
  for (const dns of id.sans.dns) parts.push(`DNS=${xfccValue(dns)}`);
  return parts.join(";");
}

/** RFC 8941 byte sequence: `:base64:` */
const byteSequence = (der: Buffer): string => `:${der.toString("base64")}:`;

/**
 * Sets the identity headers on `headers` by `format` and `mode` (see ForwardClientCertOptions).
 * `trustedPeer`: the request came from a configured trusted proxy. A client without a usable
 * identity gets none, and what it sent is removed all the same unless trusted.
 */
export function forwardClientCert(
  headers: HeaderPairs,
  identity: ClientIdentity | undefined,
  format: "xfcc" | "rfc9440",
  mode: "sanitize" | "append" | "forward",
  trustedPeer: boolean,
): void {
  const keep = trustedPeer && mode !== "sanitize";
  if (format === "xfcc") {
    const sent = keep ? getHeaders(headers, XFCC) : [];
    removeHeader(headers, XFCC);
    const ours = identity ? [xfccElement(identity)] : [];
    const value = mode === "append" ? [...sent, ...ours] : sent.length > 0 ? sent : ours;
    if (value.length > 0) setHeader(headers, XFCC, value.join(","));
    return;
  }
  const sentCert = keep ? getHeaders(headers, CLIENT_CERT) : [];
  const sentChain = keep ? getHeaders(headers, CLIENT_CERT_CHAIN) : [];
  removeHeader(headers, CLIENT_CERT);
  removeHeader(headers, CLIENT_CERT_CHAIN);
  if (sentCert.length > 0) {
    setHeader(headers, CLIENT_CERT, sentCert.join(","));
    if (sentChain.length > 0) setHeader(headers, CLIENT_CERT_CHAIN, sentChain.join(","));
    return;
  }
  if (!identity) return;
  setHeader(headers, CLIENT_CERT, byteSequence(identity.der));
  if (identity.chain.length > 0) setHeader(headers, CLIENT_CERT_CHAIN, identity.chain.map(byteSequence).join(", "));
}
