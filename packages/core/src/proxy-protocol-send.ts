/**
 * PROXY protocol outbound for L4 routes: route option `proxyProtocol: "v1" | "v2"` makes the
 * relay write a header to the upstream before any client byte, carrying the client's address
 * (the one a trusted inbound header gave, when there was one) and the address it connected to
 * (the inbound header's destination, else the listener's local address). v2 adds the AUTHORITY
 * TLV with the SNI when it is known, and, when the proxy terminated the client's TLS, the SSL TLV
 * (version, cipher, and the client certificate's CN and verdict, as HAProxy's
 * `send-proxy-v2-ssl-cn`).
 */
import type { TLSSocket } from "node:tls";
import type { Connection } from "./connection.js";
import { normalizeAddress } from "./connection.js";
import { ConfigError } from "./errors.js";
import { encodeProxyHeaderV1, encodeProxyHeaderV2, type ProxySslInfo } from "./proxy-protocol.js";
import { inboundProxyHeader } from "./proxy-protocol-accept.js";
import type { Route } from "./routing/route.js";

/** Throws ConfigError for a bad `proxyProtocol` route option. */
export function checkRouteProxyProtocolOption(options: Readonly<Record<string, unknown>>, where: string): void {
  const v = options.proxyProtocol;
  if (v !== undefined && v !== "v1" && v !== "v2") throw new ConfigError(`${where}.proxyProtocol must be "v1" or "v2"`);
}

/** The header a route wants sent ahead of the client's bytes, or undefined. */
export function outboundProxyHeader(conn: Connection, route: Route, sni: string | undefined): Buffer | undefined {
  const version = route.options.proxyProtocol;
  if (version !== "v1" && version !== "v2") return undefined;
  const inbound = inboundProxyHeader(conn);
  const raw = conn.rawSocket;
  const destination = inbound?.command === "PROXY" && inbound.destination !== undefined
    ? inbound.destination
    : { address: normalizeAddress(raw.localAddress ?? ""), port: raw.localPort ?? 0 };
  const input = {
    source: { address: conn.info.clientIp, port: conn.info.clientPort },
    destination,
    authority: sni ?? inbound?.authority,
    ssl: version === "v2" ? sslInfo(conn) : undefined,
  };
  return version === "v1" ? encodeProxyHeaderV1(input) : encodeProxyHeaderV2(input);
}

/** the client's TLS as the SSL TLV carries it; undefined when the client socket is not TLS here */
function sslInfo(conn: Connection): ProxySslInfo | undefined {
  const socket = conn.socket as Partial<TLSSocket>;
  if (socket.encrypted !== true || typeof socket.getProtocol !== "function") return undefined;
  const id = conn.identity;
  return {
    version: socket.getProtocol() ?? undefined,
    cipher: socket.getCipher?.()?.name,
    cn: id?.commonName,
    clientCert: id !== undefined,
    verified: id?.verified === true,
  };
}
