/**
 * The words every part of core (and every protocol) shares: why a connection closed and what it
 * carried, where a listener is bound, what a routing key holds, what hooks know of a client
 * connection. Types only, and no import of ours: modules import it, it imports nothing, so
 * imports point one way (accept → handshake → route → connect → relay → close).
 */

/** Why a connection closed. */
export type CloseReason =
  | "done"
  | "client-closed"
  | "client-error"
  | "upstream-closed"
  | "upstream-error"
  | "connect-failed"
  | "no-route"
  | "rejected"
  | "protocol-error"
  | "handshake-timeout"
  | "idle-timeout"
  | "lifetime-timeout"
  | "plugin-error"
  | "shutdown";

/** Why a connection closed, with what it carried. Given to `onClose` and the close event. */
export interface CloseInfo {
  readonly reason: CloseReason;
  readonly error: Error | undefined;
  /** bytes read from the client */
  readonly bytesIn: number;
  /** bytes written to the client */
  readonly bytesOut: number;
  readonly durationMs: number;
  readonly route: string | undefined;
  readonly target: string | undefined;
}

/** Where a listener is bound (its real port when it asked for port 0). */
export interface ListenerAddress {
  name: string;
  protocol: string;
  host: string;
  port: number;
}

/**
 * The routing key a protocol extracts before asking where to go. Beyond the listed fields, a
 * protocol adds the match keys it registered (`database`, `user`, …; see `registerMatchKey`).
 */
export interface RouteKey {
  listener: string;
  protocol: string;
  clientIp: string;
  host?: string;
  sni?: string;
  path?: string;
  method?: string;
  database?: string;
  user?: string;
  ehlo?: string;
  [key: string]: string | undefined;
}

/** What hooks may know about the downstream connection. */
export interface ConnectionInfo {
  readonly id: string;
  readonly listener: string;
  readonly protocol: string;
  readonly clientIp: string;
  readonly clientPort: number;
  readonly localPort: number;
  /**
   * true when the client side is TLS terminated by the proxy: from accept on for a listener that
   * terminates TLS before its protocol reads, from the upgrade on for in-protocol TLS
   */
  readonly tls: boolean;
  /** SNI the client sent, when TLS was terminated */
  readonly servername?: string | undefined;
  /**
   * the client certificate's identity, set by core after the TLS upgrade of the client socket
   * when the listener asks for certificates (`tls.verifyClient`) and the client sent one
   */
  identity?: ClientIdentity | undefined;
}

/** Subject alternative names of a client certificate, by type. */
export interface ClientSans {
  readonly dns: readonly string[];
  /** URIs, SPIFFE IDs (`spiffe://trust-domain/path`) among them */
  readonly uri: readonly string[];
  readonly email: readonly string[];
  readonly ip: readonly string[];
}

/** What a client certificate says, and whether the listener could verify it (client-identity.ts). */
export interface ClientIdentity {
  /** the chain verified against the listener's `ca` (and `crl`) */
  readonly verified: boolean;
  /** OpenSSL's reason when not verified (`CERT_HAS_EXPIRED`, `CERT_REVOKED`, …) */
  readonly verifyError: string | undefined;
  /** not verified, but the listener's mode lets it through (`optional-no-ca`, unknown issuer only) */
  readonly tolerated: boolean;
  /** RFC 4514 (`CN=alice,O=Tenant A`) */
  readonly subject: string;
  readonly commonName: string | undefined;
  /** RFC 4514 */
  readonly issuer: string;
  readonly sans: ClientSans;
  /** lowercase hex */
  readonly serialNumber: string;
  /** ISO 8601 */
  readonly validFrom: string;
  readonly validTo: string;
  /** SHA-256 of the DER certificate, lowercase hex without separators */
  readonly fingerprint256: string;
  /** the certificate, DER */
  readonly der: Buffer;
  /** the rest of the chain the handshake saw (DER, leaf excluded, issuer order) */
  readonly chain: readonly Buffer[];
}
