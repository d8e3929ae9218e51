import { ConnectionTimer, type CloseReason, type Connection } from "@switchyard/core";

/** How long a refused client gets to read the proxy's last answer before its socket is destroyed. */
export const FINAL_ANSWER_GRACE_MS = 2000;

/**
 * Sends a protocol's last words (a PostgreSQL ErrorResponse, a MySQL ERR packet) and closes
 * the connection without losing them: the client socket is ended (FIN after the bytes), what the
 * client still sends is read and dropped, and the connection is destroyed with `reason` when the
 * client closes its side or after FINAL_ANSWER_GRACE_MS, whichever comes first. Destroying at
 * once could turn into a reset that discards the answer before the client reads it.
 */
export function answerAndClose(conn: Connection, bytes: Buffer | undefined, reason: CloseReason, error?: unknown): void {
  if (conn.destroyed) return;
  const socket = conn.socket;
  conn.upstream?.destroy();
  conn.clearTimer(ConnectionTimer.HANDSHAKE);
  conn.onClientClose((c) => c.destroy(reason, error));
  conn.timer(ConnectionTimer.LINGER, FINAL_ANSWER_GRACE_MS, () => conn.destroy(reason, error));
  socket.removeAllListeners("data");
  socket.on("data", discard);
  socket.once("end", () => conn.destroy(reason, error));
  socket.resume();
  if (socket.writableEnded) return;
  if (bytes !== undefined && bytes.length > 0) socket.end(bytes);
  else socket.end();
}

function discard(): void {}
