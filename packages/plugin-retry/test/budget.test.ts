import { expect } from "chai";
import { RetryBudget } from "@switchyard/plugin-retry";

describe("RetryBudget", () => {
  function clock(start = 1_000_000) {
    const c = { t: start, now: () => c.t };
    return c;
  }

  it("allows the floor (minPerSecond x window seconds) when there is little traffic", () => {
    const c = clock();
    const b = new RetryBudget({ ratio: 0.2, windowMs: 10_000, minPerSecond: 3 }, c.now);
    expect(b.limit).to.equal(30);
    let granted = 0;
    for (let i = 0; i < 100; i++) if (b.tryAcquire()) granted++;
    expect(granted).to.equal(30);
  });

  it("allows at most 20% of the requests in the window above the floor", () => {
    const c = clock();
    const b = new RetryBudget({ ratio: 0.2, windowMs: 10_000, minPerSecond: 0 }, c.now);
    for (let i = 0; i < 1000; i++) b.recordRequest();
    expect(b.limit).to.equal(200);
    let granted = 0;
    for (let i = 0; i < 1000; i++) if (b.tryAcquire()) granted++;
    expect(granted).to.equal(200);
    expect(b.retries).to.equal(200);
  });

  it("uses the larger of ratio and floor", () => {
    const c = clock();
    const b = new RetryBudget({ ratio: 0.2, windowMs: 10_000, minPerSecond: 1 }, c.now);
    for (let i = 0; i < 20; i++) b.recordRequest();
    expect(b.limit).to.equal(10); // floor 10 > 20% of 20
    for (let i = 0; i < 80; i++) b.recordRequest();
    expect(b.limit).to.equal(20); // 20% of 100 > floor
  });

  it("forgets requests and retries that slid out of the window", () => {
    const c = clock();
    const b = new RetryBudget({ ratio: 0.5, windowMs: 1000, minPerSecond: 0 }, c.now);
    for (let i = 0; i < 10; i++) b.recordRequest();
    while (b.tryAcquire());
    expect(b.retries).to.equal(5);
    expect(b.tryAcquire()).to.equal(false);
    c.t += 500;
    for (let i = 0; i < 10; i++) b.recordRequest();
    expect(b.requests).to.equal(20);
    expect(b.tryAcquire()).to.equal(true); // limit 10, 5 used
    c.t += 600; // the first 10 requests and 5 retries are now older than the window
    expect(b.requests).to.equal(10);
    expect(b.retries).to.equal(1);
    c.t += 10_000; // everything slid out
    expect(b.requests).to.equal(0);
    expect(b.retries).to.equal(0);
    expect(b.tryAcquire()).to.equal(false); // no floor, no traffic
  });

  it("keeps retries at ~20% extra load during a full outage", () => {
    const c = clock();
    const b = new RetryBudget({ ratio: 0.2, windowMs: 10_000, minPerSecond: 3 }, c.now);
    let requests = 0;
    let retries = 0;
    for (let s = 0; s < 60; s++) {
      for (let i = 0; i < 500; i++) {
        b.recordRequest();
        requests++;
        if (b.tryAcquire()) retries++;
        if (i % 50 === 0) c.t += 100;
      }
    }
    expect(retries / requests).to.be.at.most(0.21);
    expect(retries / requests).to.be.at.least(0.15);
  });
});
