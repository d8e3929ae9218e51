/**
 * The states of one downstream connection and the transitions between them: a table, not a
 * settable label. `Connection.setState` follows it and throws on anything else.
 *
 * ```
 * accepting → handshaking → routing → connecting → established → closing → closed
 *                  │            └──────────────────────↗    ↑
 *                  └──────────────────────────────────↗     every live state → closing
 * ```
 * - `handshaking → established`: an L7 session (HTTP) is established once it serves messages;
 *   each message is routed on its own and does not move the connection back to `routing`.
 * - `routing → established`: a protocol that routed and then connected on its own terms
 *   (through a pool) rather than through core's connect.
 * - `closing`: the connection is being released (`destroy` runs its cleanups, `onClose` taps
 *   and close listeners see it); `closed` once that is done.
 */
export type ConnectionState =
  | "accepting"
  | "handshaking"
  | "routing"
  | "connecting"
  | "established"
  | "closing"
  | "closed";

/** Where each state may go next (staying in the same state is no transition, and allowed). */
export const CONNECTION_TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = Object.freeze({
  accepting: Object.freeze(["handshaking", "closing"] as const),
  handshaking: Object.freeze(["routing", "established", "closing"] as const),
  routing: Object.freeze(["connecting", "established", "closing"] as const),
  connecting: Object.freeze(["established", "closing"] as const),
  established: Object.freeze(["closing"] as const),
  closing: Object.freeze(["closed"] as const),
  closed: Object.freeze([] as const),
});

/** true when `from → to` is in the table (or `from` and `to` are the same state). */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return from === to || CONNECTION_TRANSITIONS[from].includes(to);
}

/** A transition the table does not allow: a bug in the protocol or in core, not bad input. */
export class IllegalTransitionError extends Error {
  override name = "IllegalTransitionError";
  readonly from: ConnectionState;
  readonly to: ConnectionState;
  constructor(connectionId: string, from: ConnectionState, to: ConnectionState) {
    super(`connection ${connectionId}: illegal state transition ${from} → ${to}`);
    this.from = from;
    this.to = to;
  }
}
