import type { Socket } from "node:net";
import type { Connection } from "./connection.js";

export interface RelayOptions {
  /** close after this long without traffic in either direction (0: never) */
  idleMs: number;
  /** client bytes read before the upstream was ready, sent first */
  head?: Buffer[] | undefined;
  /** the client already sent its FIN while we were connecting */
  clientEnded?: boolean | undefined;
}

/**
 * Pipes bytes both ways between client and upstream with backpressure (stream.pipe) and
 * half-close propagation: a FIN from one side ends the other side's writable; the connection
 * closes when both sockets have closed. No per-chunk JavaScript of ours runs. Idle time is
 * measured on the client socket, whose reads and writes carry every byte in both directions.
 */
export function relay(conn: Connection, upstream: Socket, options: RelayOptions): void {
  const client = conn.socket;
  conn.upstream = upstream;
  conn.setState("established");
  let open = 2;
  const onClose = () => {
    if (--open === 0) conn.destroy("done");
  };
  // client errors are already handled by the proxy's accept-time handler; the dialer's
  // placeholder error listener is replaced by ours
  upstream.removeAllListeners("error");
  upstream.on("error", (err) => conn.destroy("upstream-error", err));
  upstream.on("close", onClose); // fires once; `on` saves the wrapper `once` allocates
  conn.onClientClose(onClose);
  if (options.idleMs > 0) {
    client.setTimeout(options.idleMs, () => conn.destroy("idle-timeout"));
  }
  if (options.head) for (const chunk of options.head) upstream.write(chunk);
  if (options.clientEnded) upstream.end();
  else client.pipe(upstream);
  upstream.pipe(client);
}

/** Most bytes read from a client while its upstream is being connected. */
export const EARLY_READ_LIMIT = 64 * 1024;

/**
 * Reads what a client sends while the upstream connects, so that a reset or a FIN is noticed
 * (a paused socket never sees either). Stops reading at EARLY_READ_LIMIT. `take()` detaches
 * and hands over the bytes and whether the client ended.
 */
export function earlyRead(client: Socket): () => { head: Buffer[]; ended: boolean } {
  const head: Buffer[] = [];
  let bytes = 0;
  let ended = false;
  const onData = (d: Buffer) => {
    head.push(d);
    bytes += d.length;
    if (bytes >= EARLY_READ_LIMIT) client.pause();
  };
  const onEnd = () => {
    ended = true;
  };
  client.on("data", onData);
  client.once("end", onEnd);
  return () => {
    client.off("data", onData);
    client.off("end", onEnd);
    client.pause();
    return { head, ended };
  };
}
