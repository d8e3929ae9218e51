import type { TLSSocket } from "node:tls";
import type { UpstreamHandshake } from "@switchyard/core";
import { BackendTlsError } from "./internal/backend-tls.js";
import { SocketReader } from "./internal/socket-reader.js";
import { SSL_REQUEST_CODE } from "./postgres-wire.js";

/**
 * Upgrades the proxy's connection to a PostgreSQL server to TLS the way libpq does before
 * PostgreSQL 17: an SSLRequest in plaintext, the server's one-byte `S`, then core's upstream
 * STARTTLS on the same socket (ALPN `postgresql`, the target's `tls` keys). A server answering
 * `N` (no TLS) or anything else fails the session; bytes after the `S` and before the handshake
 * are refused (they could only be injected). Resolves with the TLS socket once the handshake is
 * done; a TLS failure rejects with core's error (UpstreamConnectError / UpstreamTimeoutError).
 */
export async function startBackendTls(phase: UpstreamHandshake, verify: boolean | undefined): Promise<TLSSocket> {
  const raw = phase.socket;
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
  return phase.upgrade({ alpn: ["postgresql"], verify });
}
