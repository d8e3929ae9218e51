/**
 * Resolver helpers: a TTL cache with request coalescing, and a timeout wrapper.
 */
import { ConfigError, ProxyError, ResolveError, ResolveErrorKind } from "../errors.js";
import type { RouteKey } from "../vocabulary.js";
import { normalizeHost } from "./glob.js";
import { CORE_MATCH_KEYS, type MatchKeyLookup } from "./match-keys.js";
import type { ResolveContext, Resolver, ResolverAnswer } from "./route.js";

/** Options of `CachedResolver`. */
export interface CachedResolverOptions {
  /** how long an answer is reused, in ms (0: never cached, lookups are still coalesced) */
  ttlMs: number;
  /** how long a NOT_FOUND error is reused, in ms (default 0: errors are not cached) */
  negativeTtlMs?: number;
  /** most entries kept; the oldest is evicted first (default 10 000) */
  maxEntries?: number;
  /** cache key of a routing key (default: `defaultKeyOf` with core's match keys) */
  keyOf?: (key: RouteKey) => string;
  /** clock in ms (default `Date.now`) */
  now?: () => number;
}

interface Entry {
  readonly expires: number;
  readonly answer?: ResolverAnswer;
  readonly error?: ResolveError;
}

interface Flight {
  readonly promise: Promise<ResolverAnswer>;
  readonly controller: AbortController;
  waiters: number;
}

const KINDS = new Set<string>(Object.values(ResolveErrorKind));

function isResolveError(err: unknown): err is ResolveError {
  if (err instanceof ResolveError) return true;
  // a ResolveError from another copy of core: branded ProxyError with a known kind
  return err instanceof ProxyError && KINDS.has((err as { kind?: unknown }).kind as string);
}

/** Turns anything a resolver threw into a ResolveError (INTERNAL, with `cause`, if it was not one). */
export function toResolveError(err: unknown): ResolveError {
  if (isResolveError(err)) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new ResolveError("INTERNAL", `resolver failed: ${detail}`, { cause: err });
}

/**
 * The default cache key: JSON of the key's defined fields, sorted by name, read through the match
 * keys: "host-glob" fields (`host`, `sni`, …) normalised as the route table compares them
 * (lowercase, no port, no trailing dot), so `A.example` and `a.example:443` share an entry;
 * "cidr" fields (`clientIp`, …) left out (an entry per client address would defeat the cache; a
 * resolver that answers by address sets its own `keyOf`); other fields as they are.
 */
export function defaultKeyOf(key: RouteKey, matchKeys: MatchKeyLookup = CORE_MATCH_KEYS): string {
  const pairs: Array<[string, string]> = [];
  for (const name of Object.keys(key).sort()) {
    const value = key[name];
    if (value === undefined) continue;
    const kind = matchKeys.kindOf(name);
    if (kind === "cidr") continue;
    pairs.push([name, kind === "host-glob" ? normalizeHost(value) : value]);
  }
  return JSON.stringify(pairs);
}

function nonNegative(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new ConfigError(`${name} must be a finite number >= 0, got ${String(value)}`);
  }
  return value;
}

function abortError(signal: AbortSignal): ResolveError {
  return new ResolveError("INTERNAL", "resolve aborted", { cause: signal.reason });
}

/**
 * Caches a resolver's answers by parsed key for `ttlMs`, and makes concurrent lookups of the
 * same key share one call to the inner resolver. NOT_FOUND errors are cached only when
 * `negativeTtlMs > 0`; every other error (UNAVAILABLE, TIMEOUT, FORBIDDEN, INTERNAL) is never
 * cached. Anything the inner resolver throws that is not a `ResolveError` becomes one (INTERNAL,
 * original as `cause`).
 *
 * A shared lookup gets its own AbortSignal, aborted only once every caller waiting on it has
 * aborted; a caller whose signal aborts stops waiting at once. Cached answers are shared
 * between callers: treat them as read-only.
 */
export class CachedResolver implements Resolver {
  readonly #inner: Resolver;
  readonly #ttl: number;
  readonly #negativeTtl: number;
  readonly #max: number;
  readonly #keyOf: (key: RouteKey) => string;
  readonly #now: () => number;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Flight>();

  constructor(inner: Resolver, opts: CachedResolverOptions) {
    if (typeof inner?.resolve !== "function") throw new ConfigError("CachedResolver needs a resolver with resolve()");
    this.#inner = inner;
    this.#ttl = nonNegative("ttlMs", opts.ttlMs);
    this.#negativeTtl = nonNegative("negativeTtlMs", opts.negativeTtlMs ?? 0);
    const max = opts.maxEntries ?? 10_000;
    if (!Number.isInteger(max) || max < 1) throw new ConfigError(`maxEntries must be an integer >= 1, got ${max}`);
    this.#max = max;
    this.#keyOf = opts.keyOf ?? defaultKeyOf;
    this.#now = opts.now ?? Date.now;
  }

  /** number of live (unexpired) cache entries */
  get size(): number {
    const now = this.#now();
    for (const [k, e] of this.#cache) if (e.expires <= now) this.#cache.delete(k);
    return this.#cache.size;
  }

  /** Forgets the entry of `key` (and stops sharing its in-flight lookup), or everything. */
  invalidate(key?: RouteKey): void {
    if (key === undefined) {
      this.#cache.clear();
      this.#inflight.clear();
      return;
    }
    const k = this.#keyOf(key);
    this.#cache.delete(k);
    this.#inflight.delete(k);
  }

  resolve(key: RouteKey, context: ResolveContext): Promise<ResolverAnswer> {
    const k = this.#keyOf(key);
    const entry = this.#cache.get(k);
    if (entry !== undefined) {
      if (entry.expires > this.#now()) {
        return entry.error !== undefined ? Promise.reject(entry.error) : Promise.resolve(entry.answer as ResolverAnswer);
      }
      this.#cache.delete(k);
    }
    const signal = context.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    let flight = this.#inflight.get(k);
    if (flight === undefined) flight = this.#start(k, key, context);
    return this.#wait(k, flight, signal);
  }

  #start(k: string, key: RouteKey, context: ResolveContext): Flight {
    const controller = new AbortController();
    const inner: ResolveContext = { connectionId: context.connectionId, signal: controller.signal };
    const run = async (): Promise<ResolverAnswer> => {
      try {
        const answer = await this.#inner.resolve(key, inner);
        if (this.#inflight.get(k) === flight) this.#store(k, { expires: this.#now() + this.#ttl, answer }, this.#ttl);
        return answer;
      } catch (err) {
        const error = toResolveError(err);
        if (error.kind === "NOT_FOUND" && this.#inflight.get(k) === flight) {
          this.#store(k, { expires: this.#now() + this.#negativeTtl, error }, this.#negativeTtl);
        }
        throw error;
      } finally {
        if (this.#inflight.get(k) === flight) this.#inflight.delete(k);
      }
    };
    const flight: Flight = { promise: Promise.resolve().then(run), controller, waiters: 0 };
    // the shared promise may end with nobody waiting (all aborted): keep that from being unhandled
    flight.promise.catch(() => {});
    this.#inflight.set(k, flight);
    return flight;
  }

  #store(k: string, entry: Entry, ttl: number): void {
    if (ttl <= 0) return;
    this.#cache.delete(k);
    while (this.#cache.size >= this.#max) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
    this.#cache.set(k, entry);
  }

  #wait(k: string, flight: Flight, signal: AbortSignal | undefined): Promise<ResolverAnswer> {
    flight.waiters++;
    if (signal === undefined) return flight.promise;
    return new Promise<ResolverAnswer>((resolve, reject) => {
      const onAbort = (): void => {
        if (--flight.waiters === 0) {
          // nobody waits any more: cancel the lookup, and let the next caller start afresh
          if (this.#inflight.get(k) === flight) this.#inflight.delete(k);
          flight.controller.abort(signal.reason);
        }
        reject(abortError(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      flight.promise.then(
        (answer) => {
          signal.removeEventListener("abort", onAbort);
          resolve(answer);
        },
        (err: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  }
}

/**
 * Wraps a resolver so that a lookup slower than `ms` rejects with ResolveError TIMEOUT and the
 * inner lookup's signal is aborted. When the caller's signal aborts first, the inner signal is
 * aborted too and the lookup rejects at once (ResolveError INTERNAL "resolve aborted"). The
 * timer and listeners are released whichever way the lookup ends. `ms` 0 returns the resolver
 * unchanged (no deadline).
 */
export function withResolverTimeout(resolver: Resolver, ms: number): Resolver {
  nonNegative("resolver timeout", ms);
  if (ms === 0) return resolver;
  return {
    resolve(key: RouteKey, context: ResolveContext): Promise<ResolverAnswer> {
      const outer = context.signal;
      if (outer?.aborted) return Promise.reject(abortError(outer));
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new ResolveError("TIMEOUT", `resolver did not answer within ${ms} ms`);
          controller.abort(err);
          reject(err);
        }, ms);
        onAbort = () => {
          controller.abort(outer.reason);
          reject(abortError(outer));
        };
        outer?.addEventListener("abort", onAbort, { once: true });
      });
      const lookup = Promise.resolve().then(() =>
        resolver.resolve(key, { connectionId: context.connectionId, signal: controller.signal }),
      );
      return Promise.race([lookup, deadline]).finally(() => {
        clearTimeout(timer);
        if (onAbort !== undefined) outer?.removeEventListener("abort", onAbort);
      });
    },
  };
}
