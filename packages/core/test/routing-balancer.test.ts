import { expect } from "chai";
import { ConfigError, parseTarget } from "@switchyard/core";
import { createBalancer } from "../dist/internal/balancer.js";
import type { LoadBalancing, Target } from "@switchyard/core";
import { seededRandom } from "@switchyard/test-utils";

const targets = (n: number): Target[] => Array.from({ length: n }, (_, i) => parseTarget(`t${i}:80`));
const names = (ts: Array<Target | undefined>) => ts.map((t) => t?.host);

describe("routing: round-robin balancer", () => {
  it("rotates through the targets in order", () => {
    const b = createBalancer(targets(3), "round-robin");
    expect(names(Array.from({ length: 7 }, () => b.pick()))).to.deep.equal(["t0", "t1", "t2", "t0", "t1", "t2", "t0"]);
  });

  it("skips excluded targets and keeps rotating after the one picked", () => {
    const ts = targets(4);
    const b = createBalancer(ts, "round-robin");
    const ex = new Set([ts[1] as Target]);
    expect(names([b.pick(ex), b.pick(ex), b.pick(ex), b.pick(ex)])).to.deep.equal(["t0", "t2", "t3", "t0"]);
    // no double turn for the neighbour of an excluded target
    expect(names([b.pick(), b.pick(), b.pick()])).to.deep.equal(["t1", "t2", "t3"]);
  });

  it("returns undefined when every target is excluded", () => {
    const ts = targets(2);
    expect(createBalancer(ts, "round-robin").pick(new Set(ts))).to.equal(undefined);
  });
});

describe("routing: least-connections balancer", () => {
  it("picks the target with the fewest open connections", () => {
    const ts = targets(3);
    const [a, b, c] = ts as [Target, Target, Target];
    const lb = createBalancer(ts, "least-connections");
    lb.acquire(a);
    lb.acquire(a);
    lb.acquire(b);
    expect(lb.pick()).to.equal(c);
    lb.acquire(c);
    lb.acquire(c);
    expect(lb.pick()).to.equal(b);
    lb.release(a);
    lb.release(a);
    expect(lb.pick()).to.equal(a);
  });

  it("breaks ties in round-robin order", () => {
    const ts = targets(3);
    const lb = createBalancer(ts, "least-connections");
    expect(names([lb.pick(), lb.pick(), lb.pick(), lb.pick()])).to.deep.equal(["t0", "t1", "t2", "t0"]);
  });

  it("spreads connections evenly when every pick is acquired", () => {
    const ts = targets(3);
    const lb = createBalancer(ts, "least-connections");
    const counts = new Map<Target, number>();
    for (let i = 0; i < 9; i++) {
      const t = lb.pick() as Target;
      lb.acquire(t);
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect([...counts.values()]).to.deep.equal([3, 3, 3]);
  });

  it("honours exclude, never counts below zero, ignores unknown targets", () => {
    const ts = targets(2);
    const [a, b] = ts as [Target, Target];
    const lb = createBalancer(ts, "least-connections");
    lb.release(a); // stays at 0
    lb.acquire(b);
    lb.acquire(parseTarget("other:1"));
    expect(lb.pick(new Set([a]))).to.equal(b);
    expect(lb.pick(new Set([a, b]))).to.equal(undefined);
    lb.acquire(a);
    expect(lb.pick()).to.equal(a); // a:1, b:1 → tie, order continues at a
  });
});

describe("routing: random balancer", () => {
  it("is uniform within ±10% over 10k picks with a seeded rng", () => {
    const ts = targets(4);
    const lb = createBalancer(ts, "random", seededRandom(42));
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const h = (lb.pick() as Target).host;
      counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    expect(counts.size).to.equal(4);
    for (const n of counts.values()) expect(n).to.be.within(2250, 2750);
  });

  it("draws only among the targets not excluded", () => {
    const ts = targets(3);
    const lb = createBalancer(ts, "random", seededRandom(7));
    const ex = new Set([ts[0] as Target]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const h = (lb.pick(ex) as Target).host;
      counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).to.deep.equal(["t1", "t2"]);
    for (const n of counts.values()) expect(n).to.be.within(4500, 5500);
    expect(lb.pick(new Set(ts))).to.equal(undefined);
  });

  it("follows the rng and tolerates an rng that returns 1", () => {
    const ts = targets(4);
    expect(createBalancer(ts, "random", () => 0.6).pick()).to.equal(ts[2]);
    expect(createBalancer(ts, "random", () => 1).pick()).to.equal(ts[3]);
  });
});

describe("routing: createBalancer", () => {
  it("rejects an unknown policy and an empty target list", () => {
    expect(() => createBalancer(targets(1), "weighted" as LoadBalancing)).to.throw(ConfigError, /weighted/);
    expect(() => createBalancer([], "round-robin")).to.throw(ConfigError, /at least one/);
  });
});
