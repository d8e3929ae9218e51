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

// The relay keeps no closures per connection: every handler below is shared and finds its
// socket's peer and connection through two symbol properties. An idle proxied connection then
// costs the two sockets and the Connection, nothing else (see BENCHMARKS.md, memory per connection).
const kPeer = Symbol("switchyard.relay.peer");
const kConn = Symbol("switchyard.relay.connection");

interface RelaySocket extends Socket {
  [kPeer]: RelaySocket;
  [kConn]: Connection;
}

function onData(this: RelaySocket, chunk: Buffer): void {
  this[kConn].touch();
  if (!this[kPeer].write(chunk)) this.pause();
}

function onDrain(this: RelaySocket): void {
  this[kPeer].resume();
}

/** a FIN from one side ends the other side's writable (half-close) */
function onEnd(this: RelaySocket): void {
  this[kPeer].end();
}

function onUpstreamError(this: RelaySocket, err: Error): void {
  this[kConn].destroy("upstream-error", err);
}

/** the connection is done once both sockets have closed */
function onSideClosed(this: RelaySocket): void {
  const peer = this[kPeer];
  if (peer.closed || peer.destroyed) this[kConn].destroy("done");
}

function onClientClosed(conn: Connection): void {
  onSideClosed.call(conn.socket as RelaySocket);
}

function wire(socket: RelaySocket, peer: RelaySocket, conn: Connection): void {
  socket[kPeer] = peer;
  socket[kConn] = conn;
  socket.on("drain", onDrain);
  socket.on("end", onEnd);
}

/**
 * Moves bytes both ways between client and upstream with backpressure (a side whose peer cannot
 * take more is paused until the peer drains) and half-close propagation (a FIN from one side
 * ends the other side's writable); the connection closes when both sockets have closed.
 * Any chunk read in either direction counts as activity for the idle timeout, which the proxy
 * checks for all relayed connections at once instead of arming a timer per socket.
 */
export function relay(conn: Connection, upstream: Socket, options: RelayOptions): void {
  const client = conn.socket as RelaySocket;
  const up = upstream as RelaySocket;
  conn.upstream = upstream;
  conn.setState("established");
  // client errors are already handled by the proxy's accept-time handler; whatever error
  // listener the dialer or the pool left on the upstream is replaced by ours
  upstream.removeAllListeners("error");
  upstream.on("error", onUpstreamError);
  upstream.on("close", onSideClosed);
  conn.onClientClose(onClientClosed);
  wire(client, up, conn);
  wire(up, client, conn);
  conn.watchIdle(options.idleMs);
  if (options.head) for (const chunk of options.head) upstream.write(chunk);
  if (options.clientEnded) upstream.end();
  else {
    client.on("data", onData);
    client.resume();
  }
  upstream.on("data", onData);
  upstream.resume();
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
