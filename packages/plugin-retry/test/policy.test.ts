import { expect } from "chai";
import { classify, decide, type AttemptOutcome } from "@switchyard/plugin-retry";

const policy = {
  retries: 2,
  backoff: { base: 10, max: 100 },
  on: new Set(["connect", "reset", "timeout", "5xx"] as const),
  statuses: new Set([429, 502, 503, 504]),
  maxRetryAfter: 2000,
  bufferLimit: 65536,
};

function outcome(o: Partial<AttemptOutcome>): AttemptOutcome {
  return { protocol: "http", attempt: 1, retryable: true, requestSent: true, safeToResend: true, ...o };
}

describe("retry rules", () => {
  it("classifies errors and statuses", () => {
    expect(classify(outcome({ errorCode: "PRX_ERR_UPSTREAM_CONNECT" }))).to.equal("connect");
    expect(classify(outcome({ errorCode: "PRX_ERR_UPSTREAM_TIMEOUT", errorPhase: "connect" }))).to.equal("connect");
    expect(classify(outcome({ errorCode: "PRX_ERR_UPSTREAM_TIMEOUT", errorPhase: "headers" }))).to.equal("timeout");
    // requestTimeout is the total deadline of the request: never retried
    expect(classify(outcome({ errorCode: "PRX_ERR_UPSTREAM_TIMEOUT", errorPhase: "request" }))).to.equal(undefined);
    expect(classify(outcome({ errorCode: "PRX_ERR_UPSTREAM_RESET" }))).to.equal("reset");
    expect(classify(outcome({ errorCode: "PRX_ERR_SSRF_BLOCKED" }))).to.equal(undefined);
    expect(classify(outcome({ status: 503 }))).to.equal("5xx");
    expect(classify(outcome({ status: 429 }))).to.equal("429");
    expect(classify(outcome({ status: 404 }))).to.equal(undefined);
  });

  it("retries connect failures for every method and protocol", () => {
    for (const protocol of ["http", "tcp", "postgres", "mysql", "smtp"]) {
      const d = decide(outcome({ protocol, errorCode: "PRX_ERR_UPSTREAM_CONNECT", requestSent: false, safeToResend: false }), policy);
      expect(d.retry, protocol).to.equal(true);
    }
  });

  it("retries only connect failures for protocols other than HTTP", () => {
    const d = decide(outcome({ protocol: "tcp", errorCode: "PRX_ERR_UPSTREAM_RESET" }), policy);
    expect(d.retry).to.equal(false);
  });

  it("never retries a non-idempotent or unreplayable request once it may have been sent", () => {
    for (const o of [{ status: 503 }, { errorCode: "PRX_ERR_UPSTREAM_RESET" }, { errorCode: "PRX_ERR_UPSTREAM_TIMEOUT", errorPhase: "headers" }]) {
      expect(decide(outcome({ ...o, safeToResend: false }), policy).retry).to.equal(false);
      expect(decide(outcome({ ...o, safeToResend: true }), policy).retry).to.equal(true);
    }
  });

  it("retries a reset before the request was written for any method", () => {
    expect(decide(outcome({ errorCode: "PRX_ERR_UPSTREAM_RESET", requestSent: false, safeToResend: false }), policy).retry).to.equal(true);
  });

  it("never retries once a response byte went downstream", () => {
    expect(decide(outcome({ errorCode: "PRX_ERR_UPSTREAM_CONNECT", retryable: false }), policy).retry).to.equal(false);
  });

  it("stops after `retries` retries", () => {
    expect(decide(outcome({ status: 503, attempt: 2 }), policy).retry).to.equal(true);
    expect(decide(outcome({ status: 503, attempt: 3 }), policy)).to.deep.equal({ retry: false, reason: "retries exhausted" });
  });

  it("honours `on` and `statuses`", () => {
    expect(decide(outcome({ status: 429 }), policy).retry).to.equal(false);
    expect(decide(outcome({ status: 429 }), { ...policy, on: new Set(["429"] as const) }).retry).to.equal(true);
    expect(decide(outcome({ status: 500 }), policy).retry).to.equal(false);
    expect(decide(outcome({ status: 500 }), { ...policy, statuses: new Set([500]) }).retry).to.equal(true);
    expect(decide(outcome({ errorCode: "PRX_ERR_UPSTREAM_CONNECT" }), { ...policy, on: new Set(["5xx"] as const) }).retry).to.equal(false);
  });

  it("retries the first stale pooled-socket reset at once, later ones with backoff", () => {
    const first = decide(outcome({ errorCode: "PRX_ERR_UPSTREAM_RESET", reusedSocket: true }), policy, () => 0.99);
    expect(first).to.include({ retry: true, delayMs: 0 });
    const second = decide(outcome({ errorCode: "PRX_ERR_UPSTREAM_RESET", reusedSocket: true, attempt: 2 }), policy, () => 0.99);
    expect(second).to.include({ retry: true, delayMs: 20 }); // floor(0.99 * (min(100, 10*2^1) + 1))
  });

  it("waits Retry-After (capped) instead of the backoff", () => {
    expect(decide(outcome({ status: 503, retryAfter: "1" }), policy)).to.include({ delayMs: 1000 });
    expect(decide(outcome({ status: 503, retryAfter: "30" }), policy)).to.include({ delayMs: 2000 });
    const d = decide(outcome({ status: 503, retryAfter: "x" }), policy, () => 0.5);
    expect(d).to.include({ delayMs: 5 });
  });
});
