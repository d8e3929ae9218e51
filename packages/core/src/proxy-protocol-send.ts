/**
 * PROXY protocol outbound for L4 routes: route option `proxyProtocol: "v1" | "v2"` makes the
 * relay write a header to the upstream before any client byte, carrying the client's address
 * (the one a trusted inbound header gave, when there was one) and the address it connected to
 * (the inbound header's destination, else the listener's local address). v2 adds the AUTHORITY
 * TLV with the SNI when it is known.
 */
import type { Connection } from "./connection.js";
import { normalizeAddress } from "./connection.js";
import { ConfigError } from "./errors.js";
import { encodeProxyHeaderV1, encodeProxyHeaderV2 } from "./proxy-protocol.js";
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
  };
  return version === "v1" ? encodeProxyHeaderV1(input) : encodeProxyHeaderV2(input);
}
