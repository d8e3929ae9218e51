// Type-level checks of the public API, compiled by tsc -b (never run).
import { MtlsPlugin, type RouteMtlsOptions } from "@switchyard/plugin-mtls";
import type { ClientIdentity, ListenerTls } from "@switchyard/core";

export const ok = new MtlsPlugin({ forwardClientCert: { format: "rfc9440", mode: "append" }, trustedProxies: ["10.0.0.0/8"] });
// @ts-expect-error an unknown format
export const badFormat = new MtlsPlugin({ forwardClientCert: { format: "pem" } });
// @ts-expect-error an unknown mode
export const badMode = new MtlsPlugin({ forwardClientCert: { format: "xfcc", mode: "replace" } });
export const routeOk: RouteMtlsOptions = { allowSans: ["spiffe://td/*"] };
// @ts-expect-error lists, not single strings
export const routeBad: RouteMtlsOptions = { allowSubjects: "CN=a" };
// @ts-expect-error verifyClient names nginx's modes only
export const tlsBad: Partial<ListenerTls> = { verifyClient: "on" };
export function readonlyIdentity(id: ClientIdentity): void {
  // @ts-expect-error an identity is read-only
  id.verified = true;
}
