/**
 * What the HTTP protocol keeps per proxy (per `ProtocolContext`): upstream pools, session deadline timers and resolved
 * listener options.
 * (Routing uses core's `context.tryResolveSync`, synchronous when only the route table answers.)
 */
import type { Connection, ProtocolContext } from "@switchyard/core";
import { resolveListenerOptions, type HttpListenerOptions, type ResolvedListenerOptions } from "./options.js";
import { DeadlineTimers } from "./internal/deadline.js";
import { Framer, type FramerHandler, type FramerLimits } from "./internal/parser.js";
import { PoolSet } from "./pool.js";

/** idle request framers kept for reuse (a bound on memory, not on connections) */
const FRAMER_POOL = 128;
const fail = (): never => {
  throw new Error("framer used while pooled");
};
const NO_HANDLER: FramerHandler = { onHead: fail, onBody: fail, onTrailers: fail, onComplete: fail };
const NO_LIMITS: FramerLimits = { maxHeaderSize: 64, maxHeaderCount: 0, maxUrlLength: 0, strict: true };

export class ProtocolRuntime {
  /** what the protocol may use of the proxy it serves (core's `conn.context`) */
  readonly context: ProtocolContext;
  readonly pools = new PoolSet();
  /** every session's deadline, in one timer per duration */
  readonly deadlines = new DeadlineTimers();
  readonly #defaults: HttpListenerOptions;
  // keyed by the listener config object a connection was accepted with: a listener reconfigured
  // or re-added under the same name (switchyard's SIGHUP reload) gets its options resolved anew
  readonly #listeners = new WeakMap<object, ResolvedListenerOptions>();

  /** request framers of sessions between requests, for the next request of any session */
  readonly #framers: Framer[] = [];

  constructor(context: ProtocolContext, defaults: HttpListenerOptions) {
    this.context = context;
    this.#defaults = defaults;
  }

  optionsFor(conn: Connection): ResolvedListenerOptions {
    const listener = conn.listener;
    let o = this.#listeners.get(listener);
    if (o === undefined) {
      o = resolveListenerOptions(`listener "${listener.name}"`, this.#defaults, listener.options, this.context.timeoutsFor(conn).connect);
      this.#listeners.set(listener, o);
    }
    return o;
  }

  /** A request framer for a session that is about to read a request. */
  takeFramer(handler: FramerHandler, limits: FramerLimits): Framer {
    const f = this.#framers.pop();
    if (f === undefined) return new Framer("request", handler, limits);
    f.bind(handler, limits);
    return f;
  }

  /** A session went idle between requests: its framer (idle too) serves someone else. */
  releaseFramer(f: Framer): void {
    if (this.#framers.length >= FRAMER_POOL) return;
    f.bind(NO_HANDLER, NO_LIMITS);
    this.#framers.push(f);
  }

  /** A connection closed: once the proxy is shutting down, idle upstream sockets go too. */
  connectionGone(): void {
    if (this.context.closing) this.pools.closeIdle();
  }

  close(): void {
    this.pools.close();
  }
}
