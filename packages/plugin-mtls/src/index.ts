export { MtlsPlugin } from "./mtls-plugin.js";
export type { ForwardClientCertOptions, MtlsOptions, RouteMtlsOptions } from "./options.js";
export { checkRoute, HTTP_STATUS, type Verdict } from "./authorize.js";
export { forwardClientCert, xfccElement, XFCC, CLIENT_CERT, CLIENT_CERT_CHAIN } from "./forward-client-cert.js";
export {
  createCa,
  createServerCert,
  createClientCert,
  createCrl,
  type CertificateOptions,
  type CertificatePair,
  type CrlOptions,
  type LeafOptions,
} from "./certificates.js";
export { inspectCertificate, formatCertificateSummary, type CertificateSummary } from "./inspect.js";

import { MtlsPlugin } from "./mtls-plugin.js";
export default MtlsPlugin;
