import type { Socket } from "node:net";
import {
  ConnectionTimer,
  relay,
  upgradeToTls,
  UpstreamHandshake,
  type ProxyError,
  type Target,
  type CloseReason,
  type Connection,
  type ResolveError,
  type RouteKey,
  type RouteMatchResult,
} from "@switchyard/core";
import { answerAndClose } from "./internal/final-answer.js";
import { BackendTlsError, backendTls } from "./internal/backend-tls.js";
import { startBackendTls } from "./postgres-backend-tls.js";
import { baseKey, routeAndConnect } from "./internal/route-connect.js";
import { ReadClosedError, SocketReader } from "./internal/socket-reader.js";
import type { CancelKeys } from "./postgres-cancel-keys.js";
import {
  BackendMessage,
  buildBackendKeyData,
  buildCancelRequest,
  buildErrorResponse,
  buildStartupPacket,
  firstPacketLengthProblem,
  isSaslMechanismList,
  withoutChannelBinding,
  parseBackendKeyData,
  parseFirstPacket,
  startupParam,
} from "./postgres-wire.js";
import type { DatabaseRouteOptions } from "./route-options.js";

/** Settings a PostgreSQL session reads (resolved from `PostgresOptions`). */
export interface PostgresSessionSettings {
  readonly authTimeoutMs: number;
  readonly maxBackendStartupMessage: number;
}

/** SSLRequest / GSSENCRequest answers a client may ask for before its startup packet. */
const MAX_NEGOTIATIONS = 3;
/** First byte of a TLS handshake record: a PostgreSQL 17 client using direct SSL. */
const TLS_HANDSHAKE_RECORD = 0x16;

type Phase = "client" | "backend";

/**
 * One PostgreSQL client connection until it becomes a byte relay: negotiation (SSL, GSSENC,
 * direct SSL), the startup packet, routing, the backend's startup reply (its BackendKeyData
 * replaced by the proxy's own key) up to ReadyForQuery, or a CancelRequest forwarded to the
 * backend that issued the key.
 */
export class PostgresSession {
  readonly #conn: Connection;
  readonly #keys: CancelKeys;
  readonly #settings: PostgresSessionSettings;
  #reader: SocketReader;
  #phase: Phase = "client";
  /** the session has given its last answer (or handed over to the relay) */
  #over = false;
  /** removes what the backend phase installed on the client socket */
  #unhookClient: (() => void) | undefined;

  constructor(conn: Connection, keys: CancelKeys, settings: PostgresSessionSettings) {
    this.#conn = conn;
    this.#keys = keys;
    this.#settings = settings;
    this.#reader = new SocketReader(conn.socket);
    conn.onDestroy(() => this.#reader.abort());
  }

  async run(): Promise<void> {
    try {
      await this.#run();
    } catch (err) {
      if (this.#over || this.#conn.destroyed) return;
      if (err instanceof ReadClosedError) {
        if (this.#phase === "client") return this.#conn.destroy("client-closed");
        return this.#fail("08006", "the backend closed the connection during startup", "upstream-closed", err);
      }
      throw err;
    }
  }

  async #run(): Promise<void> {
    const conn = this.#conn;
    const proxy = conn.proxy;
    for (let round = 0; ; round++) {
      if (round > MAX_NEGOTIATIONS) return this.#fail("08P01", "too many negotiation requests", "protocol-error");
      const first = await this.#reader.peek(1);
      if (first[0] === TLS_HANDSHAKE_RECORD) {
        if (!(await this.#startTls(true))) return;
        continue;
      }
      const head = await this.#reader.read(4);
      const length = head.readInt32BE(0);
      const problem = firstPacketLengthProblem(length);
      if (problem !== undefined) return this.#fail("08P01", `invalid startup packet: ${problem}`, "protocol-error");
      const packet = Buffer.concat([head, await this.#reader.read(length - 4)]);
      const p = parseFirstPacket(packet);
      switch (p.kind) {
        case "ssl":
          if (!(await this.#startTls(false))) return;
          continue;
        case "gssenc":
          // GSSAPI encryption is not offered: the client goes on with SSL or in plaintext
          conn.socket.write("N");
          continue;
        case "cancel":
          return this.#cancel(p.pid, p.secret);
        case "invalid":
          proxy.logger.info("postgres: invalid startup packet", { id: conn.id, reason: p.reason });
          return this.#fail(p.code, `invalid startup packet: ${p.reason}`, "protocol-error");
        case "startup":
          return this.#startup(p.major, p.minor, p.params, packet);
      }
    }
  }

  /**
   * Answers an SSLRequest (`S` and TLS in place, or `N` without listener certificates) or takes
   * a direct-SSL ClientHello, whose ALPN must be `postgresql`. False when the session ended.
   */
  async #startTls(direct: boolean): Promise<boolean> {
    const conn = this.#conn;
    const certs = conn.proxy.certificatesFor(conn);
    if (conn.socket !== conn.rawSocket) {
      this.#fail("08P01", "TLS requested twice", "protocol-error");
      return false;
    }
    if (certs === undefined) {
      if (direct) {
        // a TLS ClientHello on a listener without certificates: nothing PostgreSQL-shaped to answer
        conn.proxy.logger.info("postgres: direct SSL on a listener without tls", { id: conn.id });
        conn.destroy("protocol-error");
        return false;
      }
      conn.socket.write("N");
      return true;
    }
    const rest = this.#reader.detach();
    if (!direct && rest.length > 0) {
      // plaintext sent after SSLRequest must never be taken as if it came inside TLS
      this.#fail("08P01", "received unencrypted data after SSL request", "protocol-error");
      return false;
    }
    if (!direct) conn.socket.write("S");
    const tls = await upgradeToTls(conn, certs, {
      timeoutMs: conn.proxy.timeoutsFor(conn).handshake,
      alpn: ["postgresql"],
      ...(direct ? { head: rest } : {}),
    });
    if (direct && tls.alpnProtocol !== "postgresql") {
      conn.proxy.logger.info("postgres: direct SSL without ALPN postgresql", { id: conn.id });
      conn.destroy("protocol-error");
      return false;
    }
    this.#reader = new SocketReader(tls);
    return true;
  }

  async #startup(major: number, minor: number, params: ReadonlyArray<readonly [string, string]>, packet: Buffer): Promise<void> {
    const conn = this.#conn;
    const proxy = conn.proxy;
    const user = startupParam(params, "user");
    if (user === undefined || user === "") return this.#fail("28000", "no PostgreSQL user name specified in startup packet", "protocol-error");
    const database = startupParam(params, "database") || user;
    const base = baseKey(conn);
    if (base === undefined) return;
    const applicationName = startupParam(params, "application_name");
    const key: RouteKey = {
      ...base,
      database,
      user,
      ...(applicationName !== undefined ? { application_name: applicationName } : {}),
    };
    if (proxy.closing) return this.#fail("57P01", "the proxy is shutting down", "shutdown");
    const found = await routeAndConnect(conn, key, (failure) => {
      if (failure.kind === "connect") return this.#fail("08001", "could not connect to the database server", "connect-failed", failure.error);
      const [code, message] = resolveFailure(failure.error, database);
      this.#fail(code, message, "no-route", failure.error);
    });
    if (found === undefined) return;
    const { match, upstream, target } = found;
    this.#phase = "backend";
    const options = match.route.options["postgres"] as DatabaseRouteOptions | undefined;
    const rewritten = options?.database !== undefined || options?.user !== undefined;
    const startup = rewritten ? buildStartupPacket(major, minor, rewriteParams(params, options)) : packet;
    await this.#backendStartup(upstream, target, match, startup, options);
  }

  /**
   * Relays the authentication exchange: client bytes go to the backend as they come, backend
   * messages are read one by one (BackendKeyData replaced) until ReadyForQuery, then both
   * sockets go to the relay. An ErrorResponse (FATAL) is passed on and ends the session.
   */
  async #backendStartup(raw: Socket, target: Target, match: RouteMatchResult, startup: Buffer, options: DatabaseRouteOptions | undefined): Promise<void> {
    const conn = this.#conn;
    const client = conn.socket;
    // core's upstream handshake phase: a backend failure or the deadline reaches us at once
    const phase = new UpstreamHandshake(conn, raw, target, {
      timeoutMs: this.#settings.authTimeoutMs,
      onFailure: (err: ProxyError) =>
        err.code === "PRX_ERR_UPSTREAM_TIMEOUT"
          ? this.#fail("08006", "the backend did not complete startup in time", "handshake-timeout", err)
          : this.#fail("08006", "the backend closed the connection during startup", "upstream-error", err),
    });
    const tls = backendTls(options, target);
    if (tls !== undefined) {
      try {
        await startBackendTls(phase, tls.verify);
      } catch (err) {
        if (this.#over || conn.destroyed) return;
        conn.proxy.logger.warn("postgres: backend TLS failed", { id: conn.id, error: (err as Error).message });
        const message = err instanceof BackendTlsError ? err.message : `TLS to the database server failed: ${(err as Error).message}`;
        return this.#fail("08001", message, "connect-failed", err);
      }
      if (this.#over || conn.destroyed) return;
    }
    const upstream = phase.socket;
    upstream.write(startup);
    const early = this.#reader.detach();
    if (this.#reader.ended) return conn.destroy("client-closed");
    if (early.length > 0) upstream.write(early);
    const resume = (): void => void client.resume();
    const forward = (chunk: Buffer): void => {
      if (!upstream.write(chunk)) client.pause();
    };
    const clientEnded = (): void => conn.destroy("client-closed");
    upstream.on("drain", resume);
    client.on("data", forward);
    client.on("end", clientEnded);
    this.#unhookClient = () => {
      upstream.off("drain", resume);
      client.off("data", forward);
      client.off("end", clientEnded);
    };
    client.resume();
    const backend = new SocketReader(upstream, this.#settings.maxBackendStartupMessage + 5);
    conn.onDestroy(() => backend.abort());
    this.#reader = backend;
    for (;;) {
      const head = await backend.read(5);
      const type = head[0]!;
      const length = head.readInt32BE(1);
      if (length < 4 || length > this.#settings.maxBackendStartupMessage) {
        return this.#fail("08P01", "invalid message from the database server during startup", "upstream-error");
      }
      const message = Buffer.concat([head, await backend.read(length - 4)]);
      if (this.#over || conn.destroyed) return;
      if (type === BackendMessage.BACKEND_KEY_DATA) {
        const key = parseBackendKeyData(message);
        if (key === undefined) return this.#fail("08P01", "invalid BackendKeyData from the database server", "upstream-error");
        const issued = this.#keys.issue({ target: conn.target!, dynamic: match.route.dynamic, pid: key.pid, secret: key.secret });
        conn.onDestroy(() => this.#keys.release(issued.pid));
        client.write(buildBackendKeyData(issued.pid, issued.secret));
      } else if (type === BackendMessage.AUTHENTICATION && isSaslMechanismList(message)) {
        client.write(withoutChannelBinding(message));
      } else if (type === BackendMessage.ERROR_RESPONSE) {
        // a FATAL startup error ends the session whether or not the backend closes
        return this.#answer(message, "upstream-closed");
      } else client.write(message);
      if (type === BackendMessage.READY_FOR_QUERY) break;
    }
    // hand over: everything installed for the startup goes, the relay installs its own
    this.#over = true;
    const upstreamEnded = backend.ended;
    const rest = backend.detach();
    this.#unhookClient();
    relay(conn, phase.finish(), {
      idleMs: conn.proxy.timeoutsFor(conn).idle,
      upstreamHead: rest.length > 0 ? [rest] : undefined,
      upstreamEnded,
    });
  }

  /** Forwards a CancelRequest to the backend behind a key the proxy issued, then closes. */
  async #cancel(pid: number, secret: Buffer): Promise<void> {
    const conn = this.#conn;
    const proxy = conn.proxy;
    this.#over = true;
    this.#reader.detach();
    const backend = this.#keys.lookup(pid, secret);
    if (backend === undefined) {
      // like the server: an unknown key gets no answer, the connection just closes
      proxy.logger.info("postgres: cancel request with an unknown key", { id: conn.id });
      return answerAndClose(conn, undefined, "no-route");
    }
    let socket: Socket;
    try {
      socket = await proxy.dial(conn, backend.target, backend.dynamic);
    } catch (err) {
      if (conn.destroyed) return;
      proxy.logger.warn("postgres: cancel could not reach the backend", { id: conn.id, error: (err as Error).message });
      return answerAndClose(conn, undefined, "connect-failed", err);
    }
    // the server reads the request and closes; the client's connection closes after it
    socket.once("close", () => answerAndClose(conn, undefined, "done"));
    socket.resume();
    socket.end(buildCancelRequest(backend.pid, backend.secret));
  }

  /** Answers with an ErrorResponse and closes (nothing of the backend reached the client mid-message). */
  #fail(code: string, message: string, reason: CloseReason, error?: unknown): void {
    this.#answer(buildErrorResponse(code, message), reason, error);
  }

  /** Sends the session's last message and closes. */
  #answer(bytes: Buffer, reason: CloseReason, error?: unknown): void {
    if (this.#over) return;
    this.#over = true;
    this.#reader.abort();
    this.#unhookClient?.();
    answerAndClose(this.#conn, bytes, reason, error);
  }
}

/** SQLSTATE and message for a routing failure. */
function resolveFailure(err: ResolveError, database: string): [string, string] {
  switch (err.kind) {
    case "NOT_FOUND":
      return ["3D000", `database "${database}" does not exist (no route)`];
    case "FORBIDDEN":
      return ["28000", `access to database "${database}" is not allowed`];
    case "UNAVAILABLE":
    case "TIMEOUT":
      return ["57P03", `database "${database}" is not available now`];
    default:
      return ["XX000", `routing failed for database "${database}"`];
  }
}

/** The startup parameters with a route's rewrite applied (a missing key is added). */
function rewriteParams(params: ReadonlyArray<readonly [string, string]>, rewrite: DatabaseRouteOptions | undefined): Array<readonly [string, string]> {
  if (rewrite === undefined) return [...params];
  const out = params.map(([k, v]): readonly [string, string] => [k, (k === "user" || k === "database" ? rewrite[k] : undefined) ?? v]);
  for (const k of ["user", "database"] as const) {
    const v = rewrite[k];
    if (v !== undefined && !out.some(([key]) => key === k)) out.push([k, v]);
  }
  return out;
}
