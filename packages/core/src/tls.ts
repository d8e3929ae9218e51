import { constants, createHash, randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { createSecureContext, type SecureContext, type SecureContextOptions, TLSSocket } from "node:tls";
import { ConnectionTimer, type Connection } from "./connection.js";
import { ProtocolError, UpstreamTimeoutError } from "./errors.js";
import { readClientIdentity, type VerifyClientMode } from "./client-identity.js";
import { compileHostGlob } from "./routing/glob.js";
import type { ListenerTls } from "./types.js";

/**
 * The cipher list of a TLS listener that sets no `ciphers`: TLS 1.3's AEAD suites, then TLS 1.2
 * suites with an ephemeral (ECDHE) key exchange and AEAD encryption. No static-RSA key exchange
 * (no forward secrecy), no CBC, no SHA-1 MACs; DHE is left out (it needs DH parameters and is
 * slow). Clients from before 2014 without ECDHE+GCM/ChaCha20 cannot connect.
 */
export const DEFAULT_LISTENER_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/**
 * Secure-context options of a listener: its `secureContext` extras, then the listener's version
 * and cipher settings (or the defaults). Client-initiated renegotiation is always refused
 * (SSL_OP_NO_RENEGOTIATION, as nginx does): sockets upgraded in place have no `tls.Server`, whose
 * renegotiation limit would otherwise be the only bound on full handshakes per connection.
 */
function listenerContextOptions(o: ListenerTls, cert: string | Buffer, key: string | Buffer): SecureContextOptions {
  const extra = o.secureContext;
  return {
    ...extra,
    minVersion: o.minVersion ?? extra?.minVersion ?? "TLSv1.2",
    ciphers: o.ciphers ?? extra?.ciphers ?? DEFAULT_LISTENER_CIPHERS,
    honorCipherOrder: o.honorCipherOrder ?? extra?.honorCipherOrder ?? false,
    secureOptions: (extra?.secureOptions ?? 0) | constants.SSL_OP_NO_RENEGOTIATION,
    sessionIdContext: extra?.sessionIdContext ?? sessionIdContext(o, cert),
    cert,
    key,
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.crl ? { crl: o.crl } : {}),
  };
}

/**
 * OpenSSL resumes a session only within the context it was made in, and refuses to resume at all
 * (an "internal error" alert) when client certificates are asked for and no context id is set —
 * what `tls.Server` sets and an in-place upgrade has to set itself. Derived from the certificate,
 * CAs and mode, so a session never resumes under other verification settings.
 */
function sessionIdContext(o: ListenerTls, cert: string | Buffer): string {
  const h = createHash("sha256").update(cert).update(String(verifyClientMode(o)));
  for (const ca of [o.ca ?? []].flat()) h.update(ca);
  return h.digest("hex").slice(0, 32);
}

/** A listener's client-certificate mode: `verifyClient`, or what the older `requestCert` means. */
export function verifyClientMode(o: ListenerTls): VerifyClientMode | undefined {
  if (o.verifyClient !== undefined) return o.verifyClient;
  if (o.requestCert !== true) return undefined;
  return o.rejectUnauthorized === false ? "optional" : "required";
}

/**
 * How long a listener's session-ticket keys live: an hour, then new random keys (a reload of the
 * certificates also makes new ones). A leaked key decrypts at most an hour of sessions.
 */
export const TICKET_KEY_LIFETIME_MS = 3_600_000;

/**
 * Certificates of one listener, chosen by SNI: exact names first, then globs, then the
 * listener's default certificate. Contexts are built once.
 */
export class CertificateStore {
  readonly defaultContext: SecureContext;
  readonly #exact = new Map<string, SecureContext>();
  readonly #globs: Array<{ match: (host: string) => boolean; context: SecureContext }> = [];
  readonly options: ListenerTls;
  /** how client certificates are asked for and checked (undefined: not asked for) */
  readonly verifyClient: VerifyClientMode | undefined;

  constructor(options: ListenerTls) {
    this.options = options;
    this.verifyClient = verifyClientMode(options);
    this.defaultContext = createSecureContext(listenerContextOptions(options, options.cert, options.key));
    for (const [name, pair] of Object.entries(options.sni ?? {})) {
      const context = createSecureContext(listenerContextOptions(options, pair.cert, pair.key));
      if (name.includes("*")) {
        const g = compileHostGlob(name);
        this.#globs.push({ match: (h) => g.match(h), context });
      } else this.#exact.set(name.toLowerCase(), context);
    }
  }

  /**
   * Session-ticket keys, one set per context: Node holds a single key, so a rotation ends the
   * resumption of tickets issued before it (those clients make a full handshake once).
   */
  #ticketKeysAt = Date.now();

  /** Replaces the ticket keys of every context of the listener (see TICKET_KEY_LIFETIME_MS). */
  rotateTicketKeys(): void {
    this.#ticketKeysAt = Date.now();
    for (const context of [this.defaultContext, ...this.#exact.values(), ...this.#globs.map((g) => g.context)]) {
      (context as SecureContext & { context: { setTicketKeys(keys: Buffer): void } }).context.setTicketKeys(randomBytes(48));
    }
  }

  /** Rotates the ticket keys when they are older than `TICKET_KEY_LIFETIME_MS` (checked per handshake: no timer). */
  rotateTicketKeysIfDue(now: number): void {
    if (now - this.#ticketKeysAt >= TICKET_KEY_LIFETIME_MS) this.rotateTicketKeys();
  }

  /** The context for a server name (undefined name → default). */
  contextFor(servername: string | undefined): SecureContext {
    if (!servername) return this.defaultContext;
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact) return exact;
    for (const g of this.#globs) if (g.match(name)) return g.context;
    return this.defaultContext;
  }

  /** An SNICallback for Node's TLS server side. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.contextFor(servername));
  };
}

/** connections whose client socket is in the middle of a TLS handshake */
const handshaking = new WeakSet<Connection>();

/** true while `upgradeToTls` waits for the client's handshake (nothing can be said to it then) */
export function tlsHandshakeInProgress(conn: Connection): boolean {
  return handshaking.has(conn);
}

export interface UpgradeOptions {
  /** handshake deadline in ms (0 disables) */
  timeoutMs: number;
  /** ALPN protocols offered, in preference order */
  alpn?: string[];
  /** bytes already read from the socket that belong to the TLS handshake */
  head?: Buffer;
}

/**
 * Upgrades an accepted socket to TLS in place (PostgreSQL SSLRequest, SMTP STARTTLS, MySQL
 * SSLRequest, or a TLS listener). Resolves once the handshake is done; the connection's client
 * socket becomes the TLS socket. Anything the client sent in plaintext after the upgrade point
 * must already have been discarded by the caller.
 */
export function upgradeToTls(conn: Connection, store: CertificateStore, options: UpgradeOptions): Promise<TLSSocket> {
  const raw: Socket = conn.socket;
  if (options.head?.length) raw.unshift(options.head);
  const mode = store.verifyClient;
  store.rotateTicketKeysIfDue(conn.startedAt);
  const tlsSocket = new TLSSocket(raw, {
    isServer: true,
    secureContext: store.defaultContext,
    SNICallback: store.sniCallback,
    requestCert: mode !== undefined,
    // "required": a client without a certificate fails the handshake
    rejectUnauthorized: mode === "required",
    ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
  });
  tlsSocket.on("error", (err) => conn.destroy("client-error", err));
  // a client FIN before the handshake is done can never become a TLS session: the listener's
  // sockets are half-open (for relays), so nothing else would end it before the deadline
  const endedEarly = (): void => conn.destroy("client-closed");
  tlsSocket.once("end", endedEarly);
  conn.socket = tlsSocket;
  handshaking.add(conn);
  return new Promise<TLSSocket>((resolve, reject) => {
    conn.onDestroy(() => reject(new ProtocolError("connection closed during TLS handshake")));
    conn.timer(ConnectionTimer.TLS_HANDSHAKE, options.timeoutMs, () => {
      conn.destroy("handshake-timeout", new UpstreamTimeoutError("tls-handshake", "client TLS handshake timed out"));
    });
    tlsSocket.once("secure", () => {
      handshaking.delete(conn);
      tlsSocket.off("end", endedEarly);
      conn.clearTimer(ConnectionTimer.TLS_HANDSHAKE);
      if (mode !== undefined) {
        const verifyError = clientCertificateVerdict(tlsSocket);
        const identity = readClientIdentity(tlsSocket, verifyError, mode);
        if (mode === "required" && verifyError !== null) {
          const error = new ProtocolError(`client certificate rejected: ${verifyError}`);
          conn.context.logger.info("client certificate rejected", { id: conn.id, listener: conn.listener.name, error: verifyError, ...(identity ? { subject: identity.subject, fingerprint256: identity.fingerprint256 } : {}) });
          conn.destroy("client-error", error);
          return;
        }
        if (identity !== undefined) conn.info.identity = identity;
      }
      conn.info.tls = true;
      const sn = (tlsSocket as TLSSocket & { servername?: string | false }).servername;
      conn.info.servername = typeof sn === "string" ? sn : undefined;
      resolve(tlsSocket);
    });
  });
}

/**
 * Node checks a client certificate only for sockets of a `tls.Server`; an accepted socket
 * upgraded in place gets no check, and would take a certificate from any CA. This is the same
 * check: OpenSSL's verdict on the chain (`verifyError`, which counts the listener's `ca` and
 * `crl`) sets `authorized` / `authorizationError`, and is returned: null when verified, else its
 * code (fails closed, `VERIFY_RESULT_UNAVAILABLE`, when the verdict cannot be read). A client
 * that sent no certificate gets `NO_CERTIFICATE` (refused in the handshake when required).
 */
function clientCertificateVerdict(socket: TLSSocket): string | null {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  let code: string | null;
  if (typeof handle?.verifyError !== "function") code = "VERIFY_RESULT_UNAVAILABLE";
  else {
    const err = handle.verifyError();
    code = err === null || err === undefined ? null : (err.code ?? err.message);
  }
  if (code === null && socket.getPeerX509Certificate() === undefined) code = "NO_CERTIFICATE";
  if (code === null) socket.authorized = true;
  else (socket as { authorizationError: unknown }).authorizationError = code;
  return code;
}
