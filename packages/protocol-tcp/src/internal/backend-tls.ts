import { isIP, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Target } from "@switchyard/core";
import type { DatabaseRouteOptions } from "../route-options.js";

/** Why TLS to the backend could not be set up (the session answers with a connect failure). */
export class BackendTlsError extends Error {
  override name = "BackendTlsError";
}

/** Whether a route asks for TLS on the proxy's leg to the backend. */
export function wantsBackendTls(options: DatabaseRouteOptions | undefined): options is DatabaseRouteOptions & { sslmode: "require" | "verify-full" } {
  return options?.sslmode === "require" || options?.sslmode === "verify-full";
}

/**
 * The TLS handshake on an already-connected backend socket, after the protocol's own plaintext
 * preamble ("upstream STARTTLS", which core does not offer yet). `sslmode` "require" encrypts
 * without checking who answers (libpq's meaning); "verify-full" checks the chain against `ca`
 * (or the system roots) and the name against `servername`, the target host, or the target IP.
 */
export async function backendTlsHandshake(raw: Socket, target: Target, options: DatabaseRouteOptions, alpn?: string[]): Promise<TLSSocket> {
  const verify = options.sslmode === "verify-full";
  const servername = options.servername ?? (isIP(target.host) ? undefined : target.host);
  const tls = tlsConnect({
    socket: raw,
    ...(servername !== undefined ? { servername } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    rejectUnauthorized: verify,
    ...(verify ? {} : { checkServerIdentity: () => undefined }),
    ...(verify && servername === undefined ? { checkServerIdentity: (_name, cert) => checkIp(target.host, cert) } : {}),
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new BackendTlsError(`TLS to the database server failed: ${err.message}`));
    tls.once("error", onError);
    tls.once("secureConnect", () => {
      tls.off("error", onError);
      resolve();
    });
  });
  return tls;
}

function checkIp(ip: string, cert: { subjectaltname?: string }): Error | undefined {
  const names = (cert.subjectaltname ?? "").split(/,\s*/);
  return names.includes(`IP Address:${ip}`) ? undefined : new Error(`certificate is not valid for ${ip}`);
}
