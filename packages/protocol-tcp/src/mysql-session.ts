import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { relay, upgradeToTls, UpstreamHandshake, type CloseReason, type Connection, type ProxyError, type RouteKey, type Target } from "@switchyard/core";
import { backendTls } from "./internal/backend-tls.js";
import { answerAndClose } from "./internal/final-answer.js";
import { baseKey, routeAndConnect } from "./internal/route-connect.js";
import { ReadClosedError, SocketReader } from "./internal/socket-reader.js";
import {
  AuthPacket,
  Cap,
  MAX_HANDSHAKE_PACKET,
  MUST_AGREE,
  authSwitchPlugin,
  buildAuthSwitchRequest,
  buildErr,
  buildGreeting,
  buildHandshakeResponse,
  buildPacket,
  buildSslRequest,
  parseGreeting,
  parseHandshakeResponse,
  parsePacketHeader,
  type Greeting,
  type HandshakeResponse,
} from "./mysql-wire.js";
import type { DatabaseRouteOptions } from "./route-options.js";

/** Settings a MySQL session reads (resolved from `MysqlOptions`). */
export interface MysqlSessionSettings {
  readonly serverVersion: string;
  readonly capabilities: number;
  readonly charset: number;
  readonly authTimeoutMs: number;
  readonly nextConnectionId: () => number;
}

/** Error codes the proxy answers with (ProxySQL's 9001 for an unreachable backend). */
export const MysqlError = {
  UNKNOWN_DATABASE: 1049,
  ACCESS_DENIED: 1045,
  HANDSHAKE: 1043,
  NOT_SUPPORTED_AUTH_MODE: 1251,
  SERVER_SHUTDOWN: 1053,
  BACKEND_UNREACHABLE: 9001,
  BACKEND_INCOMPATIBLE: 9002,
} as const;

/** Plugins whose client response carries the password in clear once the client leg is TLS. */
const CLEARTEXT_OVER_TLS = new Set(["mysql_clear_password", "sha256_password", "dialog"]);
/** caching_sha2_password's AuthMoreData asking for full authentication (the password itself). */
const PERFORM_FULL_AUTHENTICATION = 0x04;

type FullResponse = Extract<HandshakeResponse, { kind: "response" }>;

/**
 * One MySQL client connection until it becomes a byte relay. The proxy greets with its own
 * nonce; the client's answer names the user and database that route it. The proxy then connects
 * to the backend, takes the backend's greeting, and asks the client to authenticate again with
 * an AuthSwitchRequest carrying the backend's nonce and plugin (the technique of MySQL Router's
 * native auth forwarder): the client's fresh response is what the backend can check, so the
 * proxy never needs a password. Packets of the rest of the exchange are relayed one by one with
 * sequence ids renumbered for each leg, until the backend's OK or ERR.
 */
export class MysqlSession {
  readonly #conn: Connection;
  readonly #settings: MysqlSessionSettings;
  #reader: SocketReader;
  /** sequence id of the next packet to the client */
  #clientSeq = 0;
  #phase: "client" | "backend" = "client";
  #over = false;
  #backendReader: SocketReader | undefined;
  /** the capability flags the proxy's greeting offered */
  #offered = 0;

  constructor(conn: Connection, settings: MysqlSessionSettings) {
    this.#conn = conn;
    this.#settings = settings;
    this.#reader = new SocketReader(conn.socket, MAX_HANDSHAKE_PACKET);
    conn.onDestroy(() => {
      this.#reader.abort();
      this.#backendReader?.abort();
    });
  }

  async run(): Promise<void> {
    try {
      await this.#run();
    } catch (err) {
      if (this.#over || this.#conn.destroyed) return;
      if (err instanceof ReadClosedError) {
        if (this.#phase === "client") return this.#conn.destroy("client-closed");
        return this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "the database server closed the connection during authentication", "upstream-closed", err);
      }
      throw err;
    }
  }

  async #run(): Promise<void> {
    const conn = this.#conn;
    const certs = conn.proxy.certificatesFor(conn);
    const caps = certs ? this.#settings.capabilities | Cap.SSL : this.#settings.capabilities & ~Cap.SSL;
    const greeting: Greeting = {
      serverVersion: this.#settings.serverVersion,
      connectionId: this.#settings.nextConnectionId(),
      scramble: nonce(),
      capabilities: caps,
      charset: this.#settings.charset,
      status: 2,
      plugin: "mysql_native_password",
    };
    this.#offered = caps;
    this.#send(buildGreeting(greeting));
    let packet = await this.#readClient();
    if (packet === undefined) return;
    let response = parseHandshakeResponse(packet);
    if (response.kind === "ssl") {
      if (certs === undefined) return this.#fail(MysqlError.HANDSHAKE, "08S01", "TLS was not offered", "protocol-error");
      // the TLS handshake follows the SSLRequest at once: bytes already read belong to it
      const head = this.#reader.detach();
      const tls = await upgradeToTls(conn, certs, { timeoutMs: conn.proxy.timeoutsFor(conn).handshake, head });
      this.#reader = new SocketReader(tls, MAX_HANDSHAKE_PACKET);
      packet = await this.#readClient();
      if (packet === undefined) return;
      response = parseHandshakeResponse(packet);
      if (response.kind === "ssl") return this.#fail(MysqlError.HANDSHAKE, "08S01", "TLS requested twice", "protocol-error");
    }
    if (response.kind === "invalid") {
      conn.proxy.logger.info("mysql: invalid handshake response", { id: conn.id, reason: response.reason });
      return this.#fail(MysqlError.HANDSHAKE, "08S01", `Bad handshake: ${response.reason}`, "protocol-error");
    }
    if (!(response.capabilities & Cap.PLUGIN_AUTH)) {
      return this.#fail(MysqlError.NOT_SUPPORTED_AUTH_MODE, "08004", "Client does not support authentication protocol requested by server; consider upgrading MySQL client", "protocol-error");
    }
    await this.#route(response);
  }

  async #route(response: FullResponse): Promise<void> {
    const conn = this.#conn;
    const proxy = conn.proxy;
    const database = response.database === "" ? undefined : response.database;
    const base = baseKey(conn);
    if (base === undefined) return;
    const key: RouteKey = { ...base, user: response.user, ...(database !== undefined ? { database } : {}) };
    if (proxy.closing) return this.#fail(MysqlError.SERVER_SHUTDOWN, "08S01", "Server shutdown in progress", "shutdown");
    const found = await routeAndConnect(conn, key, (failure) => {
      if (failure.kind === "connect") {
        return this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "Cannot connect to the database server", "connect-failed", failure.error);
      }
      const err = failure.error;
      if (err.kind === "FORBIDDEN") {
        return this.#fail(MysqlError.ACCESS_DENIED, "28000", `Access denied for user '${response.user}'`, "no-route", err);
      }
      if (err.kind === "NOT_FOUND") {
        return this.#fail(MysqlError.UNKNOWN_DATABASE, "42000", `Unknown database '${database ?? ""}' (no route)`, "no-route", err);
      }
      this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", `No database server available for '${database ?? ""}'`, "no-route", err);
    });
    if (found === undefined) return;
    const { match, upstream, target } = found;
    this.#phase = "backend";
    await this.#authenticate(upstream, target, response, match.route.options["mysql"] as DatabaseRouteOptions | undefined);
  }

  async #authenticate(raw: Socket, target: Target, response: FullResponse, options: DatabaseRouteOptions | undefined): Promise<void> {
    const conn = this.#conn;
    // core's upstream handshake phase: a backend failure or the deadline reaches us at once
    const phase = new UpstreamHandshake(conn, raw, target, {
      timeoutMs: this.#settings.authTimeoutMs,
      onFailure: (err: ProxyError) =>
        err.code === "PRX_ERR_UPSTREAM_TIMEOUT"
          ? this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "The database server did not complete authentication in time", "handshake-timeout", err)
          : this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "The database server closed the connection during authentication", "upstream-error", err),
    });
    let backend = new SocketReader(raw, MAX_HANDSHAKE_PACKET);
    this.#backendReader = backend;
    const first = await this.#readPacket(backend);
    if (first === undefined || this.#over) return;
    if (first.payload[0] === AuthPacket.ERR) {
      // the server refused before authentication (too many connections, host blocked): as it said
      return this.#finish(buildPacket(this.#clientSeq, first.payload), "upstream-closed");
    }
    const greeting = parseGreeting(first.payload);
    if (greeting === undefined) return this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "Unexpected greeting from the database server", "upstream-error");
    // what is in force on the client leg: what the client asked for of what the proxy offered
    const chosen = response.capabilities & this.#offered;
    const missing = chosen & MUST_AGREE & ~greeting.capabilities;
    if (missing !== 0) {
      return this.#fail(MysqlError.BACKEND_INCOMPATIBLE, "HY000", `The database server lacks capabilities the client chose (0x${missing.toString(16)})`, "upstream-error");
    }
    // TLS to the backend (route option sslmode): SSLRequest as packet 1, TLS, the response as 2
    let upstream: Socket = raw;
    let responseSeq = 1;
    const tls = backendTls(options, target);
    if (tls !== undefined) {
      if (!(greeting.capabilities & Cap.SSL)) {
        return this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "The database server does not offer TLS", "connect-failed");
      }
      if (backend.detach().length > 0) {
        return this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", "The database server sent data after its greeting", "upstream-error");
      }
      raw.write(buildPacket(1, buildSslRequest({ capabilities: (chosen & greeting.capabilities) | Cap.SSL, maxPacket: response.maxPacket, charset: response.charset })));
      try {
        upstream = await phase.upgrade({ verify: tls.verify });
      } catch (err) {
        if (this.#over || conn.destroyed) return;
        conn.proxy.logger.warn("mysql: backend TLS failed", { id: conn.id, error: (err as Error).message });
        return this.#fail(MysqlError.BACKEND_UNREACHABLE, "HY000", `TLS to the database server failed: ${(err as Error).message}`, "connect-failed", err);
      }
      if (this.#over || conn.destroyed) return;
      backend = new SocketReader(upstream, MAX_HANDSHAKE_PACKET);
      this.#backendReader = backend;
      responseSeq = 2;
    }
    // a client on TLS believes its password safe: never let it travel in clear to the backend
    const exposed = conn.socket !== conn.rawSocket && upstream === raw;
    if (exposed && CLEARTEXT_OVER_TLS.has(greeting.plugin)) return this.#refuseCleartext(greeting.plugin);
    // ask the client to authenticate again, over the backend's nonce and with its plugin
    this.#send(buildAuthSwitchRequest(greeting.plugin, greeting.scramble));
    const answer = await this.#readClient();
    if (answer === undefined || this.#over) return;
    const caps = ((chosen & greeting.capabilities & ~Cap.SSL) | (upstream === raw ? 0 : Cap.SSL)) >>> 0;
    upstream.write(
      buildPacket(
        responseSeq,
        buildHandshakeResponse({
          capabilities: caps,
          maxPacket: response.maxPacket,
          charset: response.charset,
          user: options?.user ?? response.user,
          authResponse: answer,
          database: options?.database ?? response.database,
          plugin: greeting.plugin,
          attributesRaw: response.attributesRaw,
        }),
      ),
    );
    // from here the backend numbers from responseSeq + 1 and the client from #clientSeq: each
    // packet is renumbered for the leg it goes to
    const toClient = (this.#clientSeq - responseSeq - 1) & 0xff;
    let plugin = greeting.plugin;
    const clientLoop = this.#forwardClientPackets(upstream, toClient);
    for (;;) {
      const packet = await this.#readPacket(backend);
      if (packet === undefined || this.#over) return;
      const kind = packet.payload[0];
      if (kind === AuthPacket.SWITCH) {
        plugin = authSwitchPlugin(packet.payload) ?? plugin;
        if (exposed && CLEARTEXT_OVER_TLS.has(plugin)) return this.#refuseCleartext(plugin);
      }
      if (exposed && kind === AuthPacket.MORE_DATA && plugin === "caching_sha2_password" && packet.payload[1] === PERFORM_FULL_AUTHENTICATION) {
        return this.#refuseCleartext(plugin);
      }
      const seq = (packet.seq + toClient) & 0xff;
      if (kind === AuthPacket.ERR) {
        // authentication failed: the session is over whether or not the backend closes
        return this.#finish(buildPacket(seq, packet.payload), "upstream-closed");
      }
      if (kind === AuthPacket.OK) {
        // the client speaks again only after this packet: stop reading it before it is sent
        this.#over = true;
        const leftover = this.#reader.detach();
        // the client loop ends on its own: its pending read fails on the detached reader
        void clientLoop;
        const upstreamEnded = backend.ended;
        const rest = backend.detach();
        const socket = phase.finish();
        if (this.#reader.ended) return conn.destroy("client-closed");
        conn.socket.write(buildPacket(seq, packet.payload));
        relay(conn, socket, {
          idleMs: conn.proxy.timeoutsFor(conn).idle,
          head: leftover.length > 0 ? [leftover] : undefined,
          upstreamHead: rest.length > 0 ? [rest] : undefined,
          upstreamEnded,
        });
        return;
      }
      conn.socket.write(buildPacket(seq, packet.payload));
      this.#clientSeq = (seq + 1) & 0xff;
    }
  }

  /** Client packets during authentication go to the backend, renumbered, until the reader detaches. */
  async #forwardClientPackets(upstream: Socket, toClient: number): Promise<void> {
    try {
      for (;;) {
        const packet = await this.#readPacket(this.#reader);
        if (packet === undefined || this.#over) return;
        upstream.write(buildPacket((packet.seq - toClient) & 0xff, packet.payload));
      }
    } catch (err) {
      if (this.#over || this.#conn.destroyed) return;
      if (err instanceof ReadClosedError) return this.#conn.destroy("client-closed");
      this.#conn.proxy.failConnection(this.#conn, err);
    }
  }

  /** A client packet's payload. */
  async #readClient(): Promise<Buffer | undefined> {
    const packet = await this.#readPacket(this.#reader);
    return packet?.payload;
  }

  /**
   * One connection-phase packet; answers ERR and undefined when it is oversized. A client
   * packet's sequence id sets the next one to the client.
   */
  async #readPacket(reader: SocketReader): Promise<{ seq: number; payload: Buffer } | undefined> {
    const { length, seq } = parsePacketHeader(await reader.read(4));
    const fromClient = reader === this.#reader;
    // an answer to the client continues the numbering of the last packet either way
    if (fromClient) this.#clientSeq = (seq + 1) & 0xff;
    if (length > MAX_HANDSHAKE_PACKET) {
      this.#fail(
        fromClient ? MysqlError.HANDSHAKE : MysqlError.BACKEND_UNREACHABLE,
        fromClient ? "08S01" : "HY000",
        fromClient ? "Bad handshake: packet too large" : "Oversized packet from the database server",
        fromClient ? "protocol-error" : "upstream-error",
      );
      return undefined;
    }
    return { seq, payload: await reader.read(length) };
  }

  #send(payload: Buffer): void {
    this.#conn.socket.write(buildPacket(this.#clientSeq, payload));
    this.#clientSeq = (this.#clientSeq + 1) & 0xff;
  }

  #refuseCleartext(plugin: string): void {
    this.#fail(
      MysqlError.BACKEND_INCOMPATIBLE,
      "HY000",
      `The database server asks for ${plugin} in clear text, and the proxy's leg to it is not TLS`,
      "upstream-error",
    );
  }

  /** Answers an ERR packet and closes. */
  #fail(code: number, sqlState: string, message: string, reason: CloseReason, error?: unknown): void {
    this.#finish(buildPacket(this.#clientSeq, buildErr(code, sqlState, message)), reason, error);
  }

  #finish(bytes: Buffer, reason: CloseReason, error?: unknown): void {
    if (this.#over) return;
    this.#over = true;
    this.#reader.abort();
    this.#backendReader?.abort();
    answerAndClose(this.#conn, bytes, reason, error);
  }
}

/** A 20-byte nonce of printable ASCII without NUL (as servers make them). */
function nonce(): Buffer {
  const b = randomBytes(20);
  for (let i = 0; i < b.length; i++) b[i] = 0x21 + (b[i]! % 94);
  return b;
}
