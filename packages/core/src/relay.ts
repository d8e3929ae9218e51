import type { Socket } from "node:net";
import { kConnection, type Connection, type OwnedSocket } from "./connection.js";
import { onDialClose, onDialError } from "./dialer.js";

export interface RelayOptions {
  /** close after this long without traffic in either direction (0: never) */
  idleMs: number;
  /** client bytes read before the upstream was ready, sent first */
  head?: Buffer[] | undefined;
  /** the client already sent its FIN while we were connecting */
  clientEnded?: boolean | undefined;
  /**
   * upstream bytes a protocol read during its upstream handshake and did not pass on: written
   * to the client first, before anything the relay reads
   */
  upstreamHead?: Buffer[] | undefined;
  /** the upstream already sent its FIN (seen by the protocol's reader): the client gets it after `upstreamHead` */
  upstreamEnded?: boolean | undefined;
}

// The relay keeps no closures per connection: every handler below is shared and finds its
// connection through one symbol property on the socket, and the peer through the connection.
// An idle proxied connection then costs the two sockets and the Connection, nothing else
// (see BENCHMARKS.md, memory per connection).
type RelaySocket = OwnedSocket;

function peerOf(socket: RelaySocket): Socket {
  const conn = socket[kConnection];
  return socket === conn.upstream ? conn.socket : conn.upstream!;
}

function onData(this: RelaySocket, chunk: Buffer): void {
  const conn = this[kConnection];
  conn.touch();
  const peer = this === conn.upstream ? conn.socket : conn.upstream!;
  if (!peer.write(chunk)) this.pause();
}

function onDrain(this: RelaySocket): void {
  peerOf(this).resume();
}

/** a FIN from one side ends the other side's writable (half-close) */
function onEnd(this: RelaySocket): void {
  peerOf(this).end();
}

function onUpstreamError(this: RelaySocket, err: Error): void {
  this[kConnection].destroy("upstream-error", err);
}

function onUpstreamClose(this: RelaySocket): void {
  this[kConnection].closeIfBothSidesClosed();
}

function onClientClosed(conn: Connection): void {
  conn.closeIfBothSidesClosed();
}

function wire(socket: Socket, conn: Connection): void {
  const owned = socket as RelaySocket;
  owned[kConnection] = conn;
  owned.on("drain", onDrain);
  onSocketEnd(owned, onEnd);
}

/**
 * Listens for a socket's "end". On a half-open socket Node's own "end" listener does nothing,
 * so it is dropped once `listener` is added: one listener instead of an array per socket (for
 * protocols that keep many idle connections; the HTTP session uses it too).
 */
export function onSocketEnd<S extends Socket>(socket: S, listener: (this: S) => void): void {
  socket.on("end", listener);
  if (!socket.allowHalfOpen) return;
  for (const l of socket.listeners("end")) if (l !== listener && l.name === "onReadableStreamEnd") socket.removeListener("end", l as never);
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
  // client errors are already handled by the proxy's accept-time handler. A socket from the
  // dialer (or upgraded by upgradeUpstream) has the dialer's shared handlers, which report to
  // the connection once it is set below; any other socket gets the relay's own. Listeners of a
  // previous owner are not touched: an owner removes its own before handing over (the upstream
  // handshake phase's finish() does).
  if (!upstream.listeners("error").includes(onDialError)) upstream.on("error", onUpstreamError);
  if (!upstream.listeners("close").includes(onDialClose)) upstream.on("close", onUpstreamClose);
  conn.onClientClose(onClientClosed);
  wire(client, conn);
  wire(up, conn);
  conn.watchIdle(options.idleMs);
  if (upstream.destroyed) return conn.destroy("upstream-closed");
  if (options.upstreamHead) for (const chunk of options.upstreamHead) client.write(chunk);
  if (options.head) for (const chunk of options.head) upstream.write(chunk);
  if (options.clientEnded) upstream.end();
  else {
    client.on("data", onData);
    client.resume();
  }
  // a FIN read before the relay listened: 'end' will not come again
  if (options.upstreamEnded) client.end();
  else {
    upstream.on("data", onData);
    upstream.resume();
  }
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
