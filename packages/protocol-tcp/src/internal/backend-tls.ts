import type { Target } from "@switchyard/core";
import type { DatabaseRouteOptions } from "../route-options.js";

/** Why TLS to the backend could not be set up (the session answers with a connect failure). */
export class BackendTlsError extends Error {
  override name = "BackendTlsError";
}

/**
 * Whether the proxy's leg to the backend uses TLS, and whether the certificate is checked:
 * undefined for plaintext, else `{ verify }` for core's `UpstreamHandshake.upgrade`. The route's
 * `sslmode` is the switch ("disable", "require": encrypted, not verified, libpq's meaning,
 * "verify-full": verified); without `sslmode`, a target with `tls` means TLS, verified unless
 * the target says `rejectUnauthorized: false`. The TLS settings (ca, servername, client
 * certificate) are always the target's `tls` keys.
 */
export function backendTls(options: DatabaseRouteOptions | undefined, target: Target): { verify: boolean | undefined } | undefined {
  switch (options?.sslmode) {
    case "disable":
      return undefined;
    case "require":
      return { verify: false };
    case "verify-full":
      return { verify: true };
    default:
      return target.tls === undefined ? undefined : { verify: undefined };
  }
}
