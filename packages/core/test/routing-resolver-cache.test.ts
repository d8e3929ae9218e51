import { expect } from "chai";
import { CachedResolver, ConfigError, ResolveError, RouteNotFoundError, withResolverTimeout } from "@switchyard/core";
import { defaultKeyOf } from "../dist/routing/resolver-cache.js";
import type { ResolveContext, Resolver, ResolverAnswer, RouteKey } from "@switchyard/core";

const key = (fields: Partial<RouteKey> = {}): RouteKey => ({
  listener: "pg",
  protocol: "postgres",
  clientIp: "10.0.0.1",
  database: "orders",
  ...fields,
});
const ctx = (signal: AbortSignal = new AbortController().signal): ResolveContext => ({ connectionId: "c1", signal });

/** A resolver whose answers the test controls, counting calls. */
class FakeResolver implements Resolver {
  calls = 0;
  signals: AbortSignal[] = [];
  readonly fn: (key: RouteKey, call: number) => ResolverAnswer | Promise<ResolverAnswer>;
  constructor(fn: (key: RouteKey, call: number) => ResolverAnswer | Promise<ResolverAnswer>) {
    this.fn = fn;
  }
  resolve(k: RouteKey, c: ResolveContext): Promise<ResolverAnswer> | ResolverAnswer {
    this.calls++;
    this.signals.push(c.signal);
    return this.fn(k, this.calls);
  }
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

async function rejection(p: Promise<unknown>): Promise<ResolveError> {
  try {
    await p;
  } catch (err) {
    return err as ResolveError;
  }
  throw new Error("expected a rejection");
}

describe("routing: CachedResolver", () => {
  let clock = 0;
  const now = () => clock;
  beforeEach(() => {
    clock = 1_000;
  });

  it("caches answers per key for ttlMs (injected clock)", async () => {
    const inner = new FakeResolver((_k, n) => `db${n}:5432`);
    const r = new CachedResolver(inner, { ttlMs: 100, now });
    expect(await r.resolve(key(), ctx())).to.equal("db1:5432");
    clock += 99;
    expect(await r.resolve(key(), ctx())).to.equal("db1:5432");
    expect(inner.calls).to.equal(1);
    clock += 1;
    expect(await r.resolve(key(), ctx())).to.equal("db2:5432");
    expect(inner.calls).to.equal(2);
    expect(await r.resolve(key({ database: "users" }), ctx())).to.equal("db3:5432");
    expect(r.size).to.equal(2);
  });

  it("ignores clientIp and field order in the default key", async () => {
    expect(defaultKeyOf(key({ clientIp: "1.1.1.1" }))).to.equal(defaultKeyOf(key({ clientIp: "2.2.2.2" })));
    expect(defaultKeyOf({ listener: "a", protocol: "p", clientIp: "x", host: "h" })).to.equal(
      defaultKeyOf({ host: "h", clientIp: "y", protocol: "p", listener: "a", user: undefined } as unknown as RouteKey),
    );
    expect(defaultKeyOf(key({ user: "u" }))).to.not.equal(defaultKeyOf(key()));
    const inner = new FakeResolver(() => "a:1");
    const r = new CachedResolver(inner, { ttlMs: 1000, now });
    await r.resolve(key({ clientIp: "1.1.1.1" }), ctx());
    await r.resolve(key({ clientIp: "9.9.9.9" }), ctx());
    expect(inner.calls).to.equal(1);
  });

  it("uses a custom keyOf", async () => {
    const inner = new FakeResolver(() => "a:1");
    const r = new CachedResolver(inner, { ttlMs: 1000, now, keyOf: (k) => k.protocol });
    await r.resolve(key({ database: "a" }), ctx());
    await r.resolve(key({ database: "b" }), ctx());
    expect(inner.calls).to.equal(1);
  });

  it("coalesces concurrent lookups of the same key into one inner call", async () => {
    const d = deferred<ResolverAnswer>();
    const inner = new FakeResolver(() => d.promise);
    const r = new CachedResolver(inner, { ttlMs: 1000, now });
    const ps = [r.resolve(key(), ctx()), r.resolve(key(), ctx()), r.resolve(key(), ctx())];
    const other = r.resolve(key({ database: "x" }), ctx());
    await Promise.resolve();
    await Promise.resolve();
    expect(inner.calls).to.equal(2);
    d.resolve("a:1");
    expect(await Promise.all([...ps, other])).to.deep.equal(["a:1", "a:1", "a:1", "a:1"]);
  });

  it("coalesces with ttlMs 0 but does not cache", async () => {
    const inner = new FakeResolver(async (_k, n) => `a:${n}`);
    const r = new CachedResolver(inner, { ttlMs: 0, now });
    expect(await Promise.all([r.resolve(key(), ctx()), r.resolve(key(), ctx())])).to.deep.equal(["a:1", "a:1"]);
    expect(await r.resolve(key(), ctx())).to.equal("a:2");
    expect(r.size).to.equal(0);
  });

  it("does not cache NOT_FOUND by default", async () => {
    const inner = new FakeResolver(() => {
      throw new RouteNotFoundError();
    });
    const r = new CachedResolver(inner, { ttlMs: 1000, now });
    expect((await rejection(r.resolve(key(), ctx()))).kind).to.equal("NOT_FOUND");
    expect((await rejection(r.resolve(key(), ctx()))).kind).to.equal("NOT_FOUND");
    expect(inner.calls).to.equal(2);
  });

  it("caches NOT_FOUND for negativeTtlMs when it is > 0", async () => {
    const inner = new FakeResolver(async () => {
      throw new ResolveError("NOT_FOUND", "no such database");
    });
    const r = new CachedResolver(inner, { ttlMs: 1000, negativeTtlMs: 50, now });
    const first = await rejection(r.resolve(key(), ctx()));
    clock += 49;
    expect(await rejection(r.resolve(key(), ctx()))).to.equal(first);
    expect(inner.calls).to.equal(1);
    clock += 1;
    await rejection(r.resolve(key(), ctx()));
    expect(inner.calls).to.equal(2);
  });

  for (const kind of ["UNAVAILABLE", "TIMEOUT", "INTERNAL", "FORBIDDEN"] as const) {
    it(`never caches ${kind}`, async () => {
      const inner = new FakeResolver(() => Promise.reject(new ResolveError(kind)));
      const r = new CachedResolver(inner, { ttlMs: 1000, negativeTtlMs: 1000, now });
      expect((await rejection(r.resolve(key(), ctx()))).kind).to.equal(kind);
      expect((await rejection(r.resolve(key(), ctx()))).kind).to.equal(kind);
      expect(inner.calls).to.equal(2);
      expect(r.size).to.equal(0);
    });
  }

  it("wraps a non-ResolveError as INTERNAL with cause, thrown or rejected", async () => {
    const boom = new TypeError("boom");
    for (const fn of [() => { throw boom; }, () => Promise.reject(boom)]) {
      const r = new CachedResolver(new FakeResolver(fn), { ttlMs: 1000, now });
      const err = await rejection(r.resolve(key(), ctx()));
      expect(err).to.be.instanceOf(ResolveError);
      expect(err.kind).to.equal("INTERNAL");
      expect(err.code).to.equal("PRX_ERR_RESOLVE_INTERNAL");
      expect(err.cause).to.equal(boom);
    }
  });

  it("evicts the oldest entry beyond maxEntries", async () => {
    const inner = new FakeResolver((k) => `${k.database}:1`);
    const r = new CachedResolver(inner, { ttlMs: 1000, maxEntries: 2, now });
    await r.resolve(key({ database: "a" }), ctx());
    await r.resolve(key({ database: "b" }), ctx());
    await r.resolve(key({ database: "c" }), ctx());
    expect(r.size).to.equal(2);
    await r.resolve(key({ database: "b" }), ctx());
    await r.resolve(key({ database: "c" }), ctx());
    expect(inner.calls).to.equal(3);
    await r.resolve(key({ database: "a" }), ctx());
    expect(inner.calls).to.equal(4);
  });

  it("invalidates one key or everything", async () => {
    const inner = new FakeResolver((k, n) => `${k.database}:${n}`);
    const r = new CachedResolver(inner, { ttlMs: 1000, now });
    await r.resolve(key({ database: "a" }), ctx());
    await r.resolve(key({ database: "b" }), ctx());
    r.invalidate(key({ database: "a" }));
    expect(r.size).to.equal(1);
    expect(await r.resolve(key({ database: "a" }), ctx())).to.equal("a:3");
    expect(await r.resolve(key({ database: "b" }), ctx())).to.equal("b:2");
    r.invalidate();
    expect(r.size).to.equal(0);
    expect(await r.resolve(key({ database: "b" }), ctx())).to.equal("b:4");
  });

  it("does not store an answer that was in flight when the key was invalidated", async () => {
    const d = deferred<ResolverAnswer>();
    const inner = new FakeResolver((_k, n) => (n === 1 ? d.promise : "fresh:1"));
    const r = new CachedResolver(inner, { ttlMs: 1000, now });
    const stale = r.resolve(key(), ctx());
    await Promise.resolve();
    r.invalidate(key());
    d.resolve("stale:1");
    expect(await stale).to.equal("stale:1");
    expect(await r.resolve(key(), ctx())).to.equal("fresh:1");
  });

  it("a caller that aborts stops waiting; the shared lookup is cancelled only when all callers aborted", async () => {
    const d = deferred<ResolverAnswer>();
    const inner = new FakeResolver(() => d.promise);
    const r = new CachedResolver(inner, { ttlMs: 1000, now });
    const a = new AbortController();
    const b = new AbortController();
    const pa = r.resolve(key(), ctx(a.signal));
    const pb = r.resolve(key(), ctx(b.signal));
    await Promise.resolve();
    await Promise.resolve();
    a.abort();
    expect((await rejection(pa)).kind).to.equal("INTERNAL");
    expect(inner.signals[0]?.aborted).to.equal(false);
    b.abort();
    await rejection(pb);
    expect(inner.signals[0]?.aborted).to.equal(true);
    d.resolve("late:1");
    // the next caller starts a new lookup
    r.resolve(key(), ctx()).catch(() => {});
    await Promise.resolve();
    await Promise.resolve();
    expect(inner.calls).to.equal(2);
  });

  it("validates its options", () => {
    const inner = new FakeResolver(() => "a:1");
    expect(() => new CachedResolver(inner, { ttlMs: -1 })).to.throw(ConfigError, /ttlMs/);
    expect(() => new CachedResolver(inner, { ttlMs: 1, maxEntries: 0 })).to.throw(ConfigError, /maxEntries/);
    expect(() => new CachedResolver(inner, { ttlMs: 1, negativeTtlMs: Number.NaN })).to.throw(ConfigError);
  });
});

/** Runs `fn` while recording timers created and cleared through the globals. */
async function trackTimers(fn: () => Promise<void>): Promise<{ created: number; uncleared: number }> {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const live = new Set<unknown>();
  let created = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    const t = realSet(...args);
    created++;
    live.add(t);
    return t;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((t: Parameters<typeof clearTimeout>[0]) => {
    live.delete(t);
    realClear(t);
  }) as typeof clearTimeout;
  try {
    await fn();
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  for (const t of live) realClear(t as NodeJS.Timeout);
  return { created, uncleared: live.size };
}

describe("routing: withResolverTimeout", () => {
  it("rejects with ResolveError TIMEOUT and aborts the inner signal when too slow", async () => {
    const inner = new FakeResolver(() => new Promise<ResolverAnswer>(() => {}));
    const r = withResolverTimeout(inner, 20);
    const started = Date.now();
    const err = await rejection(Promise.resolve(r.resolve(key(), ctx())));
    expect(err).to.be.instanceOf(ResolveError);
    expect(err.kind).to.equal("TIMEOUT");
    expect(err.code).to.equal("PRX_ERR_RESOLVE_TIMEOUT");
    expect(Date.now() - started).to.be.at.least(15);
    expect(inner.signals[0]?.aborted).to.equal(true);
  });

  it("passes answers and errors through and clears its timer", async () => {
    const timers = await trackTimers(async () => {
      const ok = withResolverTimeout(new FakeResolver(async () => "a:1"), 10_000);
      expect(await ok.resolve(key(), ctx())).to.equal("a:1");
      const failing = withResolverTimeout(new FakeResolver(() => Promise.reject(new ResolveError("UNAVAILABLE"))), 10_000);
      expect((await rejection(Promise.resolve(failing.resolve(key(), ctx())))).kind).to.equal("UNAVAILABLE");
    });
    expect(timers).to.deep.equal({ created: 2, uncleared: 0 });
  });

  it("forwards the caller's abort to the inner lookup and stops waiting", async () => {
    const inner = new FakeResolver(() => new Promise<ResolverAnswer>(() => {}));
    const timers = await trackTimers(async () => {
      const ac = new AbortController();
      const p = Promise.resolve(withResolverTimeout(inner, 10_000).resolve(key(), ctx(ac.signal)));
      await Promise.resolve();
      await Promise.resolve();
      ac.abort();
      expect(inner.signals[0]?.aborted).to.equal(true);
      const err = await rejection(p);
      expect(err.kind).to.not.equal("TIMEOUT");
    });
    expect(timers).to.deep.equal({ created: 1, uncleared: 0 });
  });

  it("returns the resolver unchanged for 0 and rejects negative deadlines", () => {
    const inner = new FakeResolver(() => "a:1");
    expect(withResolverTimeout(inner, 0)).to.equal(inner);
    expect(() => withResolverTimeout(inner, -5)).to.throw(ConfigError);
  });
});
