/**
 * Refusals in protocol terms: when core closes a connection on its own account (a listener's
 * connection limit, an `onAccept` rejection, the handshake deadline, shutdown), the protocol
 * answers first in its own words (`ProtocolHandler.refuse`), then the connection closes with a
 * short lingering close so the answer is not lost to a reset. All of it within one deadline.
 */
import type { Connection } from "../connection.js";
import { ConnectionTimer } from "../connection.js";
import type { Logger, ProtocolHandler, Refusal } from "../plugin.js";

/** How long one refusal may take: the protocol's answer, then the client's close. */
export const REFUSAL_DEADLINE_MS = 1000;
/** Most refusals in progress per proxy; beyond that, refused connections are closed at once. */
export const MAX_REFUSALS = 1024;

/** The refusals of one proxy. */
export class Refusals {
  readonly #logger: Logger;
  readonly #active = new WeakSet<Connection>();
  #count = 0;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** refusals in progress */
  get active(): number {
    return this.#count;
  }

  /**
   * Refuses `conn`: through `protocol.refuse` when it has one and the client can read an answer
   * (`canHear`), else at once. The connection ends with `refusal.reason` either way. A connection
   * already being refused, or destroyed, is left alone.
   */
  refuse(conn: Connection, protocol: ProtocolHandler | undefined, canHear: boolean, refusal: Refusal): void {
    if (conn.destroyed || this.#active.has(conn)) return;
    conn.markRefused(refusal.reason, refusal.error);
    if (protocol?.refuse === undefined || !canHear || this.#count >= MAX_REFUSALS) {
      return conn.destroy(refusal.reason, refusal.error);
    }
    this.#active.add(conn);
    this.#count++;
    conn.onDestroy(() => this.#count--);
    // one deadline for the whole refusal replaces the handshake deadline
    conn.clearTimer(ConnectionTimer.HANDSHAKE);
    conn.timer(ConnectionTimer.REFUSAL, REFUSAL_DEADLINE_MS, () => conn.destroy(refusal.reason, refusal.error));
    // whichever way the client goes now, the connection ends as refused
    conn.onClientClose((c) => c.destroy(refusal.reason, refusal.error));
    let answered: void | Promise<void>;
    try {
      answered = protocol.refuse(conn, refusal);
    } catch (err) {
      return this.#failed(conn, protocol, refusal, err);
    }
    if (answered instanceof Promise) {
      answered.then(
        () => this.#linger(conn),
        (err: unknown) => this.#failed(conn, protocol, refusal, err),
      );
    } else this.#linger(conn);
  }

  /** After the answer: our FIN, and what the client still sends is read and dropped until it closes. */
  #linger(conn: Connection): void {
    if (conn.destroyed) return;
    const socket = conn.socket;
    socket.end();
    socket.resume();
  }

  #failed(conn: Connection, protocol: ProtocolHandler, refusal: Refusal, err: unknown): void {
    this.#logger.warn("refusal failed", { id: conn.id, protocol: protocol.name, error: err instanceof Error ? err.message : String(err) });
    conn.destroy(refusal.reason, refusal.error);
  }
}
