/**
 * Reads the first bytes of an accepted socket for a decision made before any protocol sees it
 * (a PROXY header, a TLS ClientHello), then gives back what the decision did not consume: the
 * bytes are unshifted onto the socket, which is left as it was found (not flowing), so the next
 * reader (a protocol's "data" listener, the relay, a TLS upgrade) reads them as if nothing had
 * happened.
 */
import type { Socket } from "node:net";
import type { Connection } from "../connection.js";

/** What a step answers once it has decided: its value, and the bytes to give back. */
export interface PrefixDecision<T> {
  value: T;
  unread: Buffer | undefined;
}

export type PrefixResult<T> =
  | { kind: "done"; value: T }
  /** the client sent its FIN first */
  | { kind: "ended" }
  /** the deadline passed */
  | { kind: "timeout" }
  /** the connection was destroyed meanwhile */
  | { kind: "closed" };

/**
 * Feeds each chunk read from `socket` to `step` until it decides (returns a decision), throws
 * (the promise rejects with its error), the client ends, `timeoutMs` passes (0: no deadline of
 * its own) or the connection is destroyed.
 */
export function readSocketPrefix<T>(
  conn: Connection,
  socket: Socket,
  timeoutMs: number,
  step: (chunk: Buffer) => PrefixDecision<T> | undefined,
): Promise<PrefixResult<T>> {
  return new Promise<PrefixResult<T>>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: PrefixResult<T> | undefined, err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", onEnd);
      if (result === undefined) reject(err);
      else resolve(result);
    };
    const onReadable = (): void => {
      for (;;) {
        if (settled) return;
        const chunk = socket.read() as Buffer | null;
        if (chunk === null) return;
        let decision: PrefixDecision<T> | undefined;
        try {
          decision = step(chunk);
        } catch (err) {
          return finish(undefined, err);
        }
        if (decision !== undefined) {
          if (decision.unread !== undefined && decision.unread.length > 0) socket.unshift(decision.unread);
          return finish({ kind: "done", value: decision.value });
        }
      }
    };
    const onEnd = (): void => finish({ kind: "ended" });
    if (conn.destroyed) return finish({ kind: "closed" });
    conn.onDestroy(() => finish({ kind: "closed" }));
    if (timeoutMs > 0) timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    socket.on("readable", onReadable);
    socket.once("end", onEnd);
  });
}
