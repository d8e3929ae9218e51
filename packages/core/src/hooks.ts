import { AsyncSeriesBailHook, AsyncSeriesWaterfallHook, SyncBailHook, SyncHook } from "tapable";
import type { Connection } from "./connection.js";
import { PluginError, type ResolveError } from "./errors.js";
import type { ProxyRequest, UpstreamResponse } from "./messages.js";
import type { RouteMatchResult } from "./routing/route.js";
import type { CloseInfo, RouteKey } from "./vocabulary.js";

/** Returned by an `onAccept` tap to refuse a connection. */
export interface Rejection {
  reason: string;
}

/** Argument of `onResolve`: the key the protocol extracted and its connection. */
export interface ResolveRequest {
  readonly key: RouteKey;
  readonly connection: Connection;
}

/** Argument of `onRouted`: the key, its connection and the route it matched. */
export interface RoutedRequest extends ResolveRequest {
  readonly match: RouteMatchResult;
}

export type { CloseInfo, CloseReason } from "./vocabulary.js";

function createHooks() {
  return {
    /**
     * Fires when a socket is accepted, before any byte is read. A tap (`tapPromise` or `tap`)
     * returns a `Rejection` to refuse the connection; the first rejection wins.
     */
    onAccept: new AsyncSeriesBailHook<[Connection], Rejection | undefined>(["connection"], "onAccept"),
    /**
     * Fires when the protocol has a routing key. A tap returns a `RouteMatchResult` to choose
     * where it goes; the first answer (by stage) wins. The route table answers at
     * `Stage.DEFAULT_ROUTES`; throw a `ResolveError` to refuse with a typed reason.
     */
    onResolve: new AsyncSeriesBailHook<[ResolveRequest], RouteMatchResult | undefined>(["request"], "onResolve"),
    /**
     * Fires once a route answered a key (`proxy.resolve`), before the protocol connects: the
     * place for authorization that depends on the route (plugin-mtls's allow-lists). A tap
     * (`tap`, synchronous) returns a `ResolveError` to refuse (kind `FORBIDDEN` for "not
     * allowed"); each protocol answers it as it answers a resolver's refusal (HTTP 403, a
     * PostgreSQL ErrorResponse, a MySQL ERR packet, SMTP 5xx, a closed TCP connection).
     */
    onRouted: new SyncBailHook<[RoutedRequest], ResolveError | undefined>(["request"], "onRouted"),
    /**
     * Fires for each L7 message before it goes upstream. Taps return the (possibly changed)
     * message, may set `target`, or set `response` to answer directly.
     */
    onRequest: new AsyncSeriesWaterfallHook<[ProxyRequest]>(["request"], "onRequest"),
    /**
     * Fires for each upstream answer or upstream failure before it goes downstream. Taps return
     * the (possibly changed) response, or set `retry` to ask for another attempt.
     */
    onUpstreamResponse: new AsyncSeriesWaterfallHook<[UpstreamResponse, ProxyRequest | undefined]>(
      ["response", "request"],
      "onUpstreamResponse",
    ),
    /** Fires once when a connection is gone. Observe only (`tap`). */
    onClose: new SyncHook<[Connection, CloseInfo]>(["connection", "info"], "onClose"),
  };
}

export type ProxyHooks = Readonly<ReturnType<typeof createHooks>>;

interface TapLike {
  name: string;
  type: string;
  fn: (...args: unknown[]) => unknown;
}

/**
 * Wraps every tap's function so a throw or rejection becomes a `PluginError` naming hook and
 * plugin. Registered once per hook with a tapable `register` interceptor.
 */
function wrapTaps(hookName: string, hook: { intercept(i: { register(tap: TapLike): TapLike }): void }): void {
  hook.intercept({
    register(tap) {
      const fn = tap.fn;
      const plugin = tap.name;
      if (tap.type === "promise") {
        tap.fn = (...args: unknown[]) => {
          let p: unknown;
          try {
            p = fn(...args);
          } catch (err) {
            return Promise.reject(asPluginError(hookName, plugin, err));
          }
          return Promise.resolve(p).catch((err: unknown) => {
            throw asPluginError(hookName, plugin, err);
          });
        };
      } else if (tap.type === "sync") {
        tap.fn = (...args: unknown[]) => {
          try {
            return fn(...args);
          } catch (err) {
            throw asPluginError(hookName, plugin, err);
          }
        };
      } else {
        tap.fn = (...args: unknown[]) => {
          const cb = args[args.length - 1] as (err?: unknown, r?: unknown) => void;
          const rest = args.slice(0, -1);
          try {
            fn(...rest, (err?: unknown, r?: unknown) => cb(err ? asPluginError(hookName, plugin, err) : err, r));
          } catch (err) {
            cb(asPluginError(hookName, plugin, err));
          }
        };
      }
      return tap;
    },
  });
}

/** Typed errors a resolver throws on purpose pass through unwrapped. */
function asPluginError(hook: string, plugin: string, err: unknown): Error {
  if (err instanceof PluginError) return err;
  if (hook === "onResolve" && err instanceof Error && (err as { code?: string }).code?.startsWith("PRX_ERR_RESOLVE_")) {
    return err;
  }
  return new PluginError(hook, plugin, err);
}

/** A tapable hook of any kind (what `defineHooks` wraps). */
export interface TapableHook {
  readonly taps: readonly unknown[];
  isUsed(): boolean;
  intercept(interceptor: object): void;
}

/** What `defineHooks` takes: tapable hooks, by name. */
export type HookSet = Record<string, TapableHook>;

/**
 * Builds a set of hooks the way core builds its own, for a package's own extension points (an
 * SMTP protocol's `onMailFrom`, a plugin's `getHooks(proxy)`): each tap's function is wrapped so a
 * throw or rejection becomes a `PluginError` naming the hook (its key) and the plugin (the tap's
 * name); `isUsed()` counts taps only (the wrapping is not use); the object is frozen. The types
 * come from the `new` calls:
 *
 * ```ts
 * const hooks = defineHooks({
 *   onMailFrom: new AsyncSeriesBailHook<[MailFrom], Rejection | undefined>(["mail"]),
 * });
 * ```
 */
export function defineHooks<T extends HookSet>(hooks: T): Readonly<T> {
  for (const [name, hook] of Object.entries(hooks)) {
    wrapTaps(name, hook as unknown as Parameters<typeof wrapTaps>[1]);
    // tapable counts interceptors as use; ours only wraps taps, so only taps count
    const h = hook as unknown as { taps: unknown[]; interceptors: unknown[]; isUsed(): boolean };
    const ours = h.interceptors.length;
    h.isUsed = function isUsed(this: typeof h) {
      return this.taps.length > 0 || this.interceptors.length > ours;
    };
  }
  return Object.freeze(hooks);
}

/** The proxy's own hooks (one set per Proxy). */
export function buildHooks(): ProxyHooks {
  return defineHooks(createHooks());
}
