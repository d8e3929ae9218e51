import type { Socket } from "node:net";
import type { Connection } from "../connection.js";
import { PluginError, ProxyError, UpstreamConnectError } from "../errors.js";
import type { ProxyRequest, UpstreamResponse } from "../messages.js";
import type { ProtocolContext } from "../protocol-context.js";
import { reportConnect } from "./balancer.js";
import type { RouteMatchResult } from "../routing/route.js";
import type { Target } from "../types.js";

/** How `connectUpstream` connects; see `Proxy.connectUpstream`. */
export interface ConnectUpstreamOptions {
  /**
   * `"starttls"`: dial in plaintext even when the target has `tls`; the protocol sends its
   * preamble and upgrades the socket with `upgradeUpstream` / `UpstreamHandshake.upgrade`,
   * which read the target's `tls` keys. Default: a target with `tls` is TLS from the first byte.
   */
  tls?: "first-byte" | "starttls" | undefined;
  /**
   * The protocol's first exchange with a freshly connected upstream (an SMTP greeting and EHLO),
   * run inside the connect loop: a rejection counts as a failed attempt of that target — the
   * socket is destroyed, the target reported to the balancer as failing, and `onUpstreamResponse`
   * taps (plugin-retry) may ask for another target, as after a connect failure. Only for what
   * happens before any client byte went upstream. An error that is not a `ProxyError` is wrapped
   * in `UpstreamConnectError`; a `PluginError` ends the loop as it is. `connectUpstream` then
   * resolves with the dialed socket; a handshake that upgraded it to TLS keeps the TLS socket
   * (it is `conn.upstream`).
   */
  handshake?: ((socket: Socket, target: Target) => Promise<void>) | undefined;
}

/** Most attempts the core makes for one upstream connect, whatever taps ask. */
const MAX_CONNECT_ATTEMPTS = 10;

/**
 * The connect loop behind `Proxy.connectUpstream`: picks a target (another one after a failure
 * when the tap asks), dials it, and after a failure asks `onUpstreamResponse` whether and when to
 * try again. The client going away ends it at any point.
 *
 * The connection holds its balancer slot from the pick on (a dial in progress counts for
 * least-connections; the slot moves with the next pick and goes when the connection ends), and
 * every connect outcome is reported to the balancer (least-connections passes over a target
 * that just failed).
 */
export async function connectWithRetries(
  proxy: ProtocolContext,
  conn: Connection,
  match: RouteMatchResult,
  request?: ProxyRequest,
  options: ConnectUpstreamOptions = {},
): Promise<{ socket: Socket; target: Target }> {
  const starttls = options.tls === "starttls";
  const route = match.route;
  const tried = new Set<Target>();
  // a connection being routed is connecting now; an established L7 session connecting for one
  // of its messages stays established (per-message work is no phase of the connection)
  if (conn.state === "routing") conn.setState("connecting");
  for (let attempt = 1; ; attempt++) {
    const target = request?.target ?? route.balancer.pick(tried) ?? route.balancer.pick();
    if (!target) throw new UpstreamConnectError(`route ${route.name} has no target`);
    conn.target = target;
    // a destroyed connection has released its slot already: it must not take another
    if (conn.destroyed) throw new UpstreamConnectError("client went away during connect");
    conn.lease(route, target);
    try {
      // a byte relay keeps each direction open until its own FIN (half-close both ways)
      const socket = await proxy.dial(conn, starttls ? plainTarget(target) : target, route.dynamic, { allowHalfOpen: true });
      if (conn.destroyed) {
        socket.destroy();
        throw new UpstreamConnectError("client went away during connect");
      }
      if (options.handshake !== undefined) {
        try {
          await options.handshake(socket, target);
        } catch (err) {
          socket.destroy();
          // a handshake that upgraded the socket made the TLS socket the connection's upstream
          if (conn.upstream !== undefined && conn.upstream !== socket) conn.upstream.destroy();
          throw err;
        }
      }
      reportConnect(route.balancer, target, true);
      return { socket, target };
    } catch (err) {
      // the client going away says nothing about the target; a failing tap is a plugin failure
      if (conn.destroyed || err instanceof PluginError) throw err;
      reportConnect(route.balancer, target, false);
      const error = err instanceof ProxyError ? err : new UpstreamConnectError(err instanceof Error ? err.message : String(err), { cause: err });
      proxy.events.emit("upstreamError", { connection: conn.info, target, error });
      if (!proxy.hooks.onUpstreamResponse.isUsed() || attempt >= MAX_CONNECT_ATTEMPTS) throw error;
      const res: UpstreamResponse = {
        protocol: conn.listener.protocol,
        attempt,
        target,
        route,
        error,
        retryable: true,
        requestSent: false,
        retry: undefined,
      };
      const out = await proxy.hooks.onUpstreamResponse.promise(res, request);
      if (!out.retry || conn.destroyed) throw error;
      if (out.retry.otherTarget !== false) tried.add(target);
      await sleep(out.retry.delayMs, conn.signal);
      if (conn.destroyed) throw error;
    }
  }
}

/** The target without its `tls`: dialed in plaintext, upgraded by the protocol later. */
function plainTarget(target: Target): Target {
  if (target.tls === undefined) return target;
  const { tls: _tls, ...plain } = target;
  return plain;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
