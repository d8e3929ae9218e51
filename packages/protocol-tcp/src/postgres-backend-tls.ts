import { isIP, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Target } from "@switchyard/core";
import { SocketReader } from "./internal/socket-reader.js";
import type { DatabaseRouteOptions } from "./route-options.js";
import { SSL_REQUEST_CODE } from "./postgres-wire.js";

/** Why TLS to the backend could not be set up (the session answers 08001). */
export class BackendTlsError extends Error {
  override name = "BackendTlsError";
}

/**
 * Upgrades the proxy's connection to a PostgreSQL server to TLS the way libpq does before
 * PostgreSQL 17: an SSLRequest in plaintext, the server's one-byte `S`, then a TLS handshake on
 * the same socket ("upstream STARTTLS", which core does not offer yet). A server answering `N`
 * (no TLS) or anything else fails the session; bytes after the `S` and before the handshake
 * are refused (they could only be injected). Resolves with the TLS socket once the handshake
 * is done; certificate checks follow `sslmode`.
 */
export async function startBackendTls(raw: Socket, target: Target, options: DatabaseRouteOptions): Promise<TLSSocket> {
  const request = Buffer.alloc(8);
  request.writeInt32BE(8, 0);
  request.writeUInt32BE(SSL_REQUEST_CODE, 4);
  raw.write(request);
  const reader = new SocketReader(raw, 1024);
  let answer: Buffer;
  try {
    answer = await reader.read(1);
  } catch {
    reader.detach();
    throw new BackendTlsError("the database server closed the connection before answering SSLRequest");
  }
  const rest = reader.detach();
  if (answer[0] === 0x4e) throw new BackendTlsError("the database server does not accept TLS (it answered N to SSLRequest)");
  if (answer[0] !== 0x53) throw new BackendTlsError("the database server answered SSLRequest with something other than S or N");
  if (rest.length > 0) throw new BackendTlsError("the database server sent data after S, before the TLS handshake");
  const verify = options.sslmode === "verify-full";
  const servername = options.servername ?? (isIP(target.host) ? undefined : target.host);
  const tls = tlsConnect({
    socket: raw,
    ...(servername !== undefined ? { servername } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    rejectUnauthorized: verify,
    // "require" encrypts without checking who answers (libpq's meaning)
    ...(verify ? {} : { checkServerIdentity: () => undefined }),
    // verify-full against an IP target without servername: check the IP against the certificate
    ...(verify && servername === undefined ? { checkServerIdentity: (_name, cert) => checkIp(target.host, cert) } : {}),
    ALPNProtocols: ["postgresql"],
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
