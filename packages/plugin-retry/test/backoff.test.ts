import { expect } from "chai";
import { backoffCeiling, backoffDelay, parseRetryAfter, retryAfterDelay } from "@switchyard/plugin-retry";

describe("backoff", () => {
  it("doubles the ceiling per retry and caps it at max", () => {
    const o = { base: 10, max: 100 };
    expect([0, 1, 2, 3, 4, 5, 60, 2000].map((n) => backoffCeiling(n, o))).to.deep.equal([10, 20, 40, 80, 100, 100, 100, 100]);
  });

  it("keeps many jittered samples within [0, min(max, base*2^n)] and spreads them", () => {
    const o = { base: 10, max: 100 };
    for (let n = 0; n < 8; n++) {
      const ceiling = Math.min(o.max, o.base * 2 ** n);
      const samples = Array.from({ length: 2000 }, () => backoffDelay(n, o));
      for (const d of samples) {
        expect(d).to.be.at.least(0);
        expect(d).to.be.at.most(ceiling);
        expect(Number.isInteger(d)).to.equal(true);
      }
      // full jitter: both ends of the range are reached, not a fixed delay
      expect(Math.min(...samples)).to.be.at.most(ceiling * 0.1);
      expect(Math.max(...samples)).to.be.at.least(ceiling * 0.9);
    }
  });

  it("maps the random source's extremes to 0 and the ceiling", () => {
    const o = { base: 7, max: 1000 };
    expect(backoffDelay(2, o, () => 0)).to.equal(0);
    expect(backoffDelay(2, o, () => 0.999999)).to.equal(28);
  });

  it("is 0 when base is 0", () => {
    expect(backoffDelay(5, { base: 0, max: 100 })).to.equal(0);
  });
});

describe("Retry-After", () => {
  const now = Date.parse("2024-01-01T00:00:00Z");

  it("parses delay-seconds", () => {
    expect(parseRetryAfter("0", now)).to.equal(0);
    expect(parseRetryAfter(" 3 ", now)).to.equal(3000);
    expect(parseRetryAfter("120", now)).to.equal(120_000);
  });

  it("parses an IMF-fixdate relative to now, never negative", () => {
    expect(parseRetryAfter("Mon, 01 Jan 2024 00:00:05 GMT", now)).to.equal(5000);
    expect(parseRetryAfter("Sun, 31 Dec 2023 23:59:00 GMT", now)).to.equal(0);
  });

  it("parses the obsolete RFC 850 and asctime forms, both as UTC", () => {
    expect(parseRetryAfter("Monday, 01-Jan-24 00:00:02 GMT", now)).to.equal(2000);
    // asctime has no zone: it is UTC, whatever the process's TZ (Date.parse read it as local time)
    expect(parseRetryAfter("Mon Jan  1 00:00:03 2024", now)).to.equal(3000);
    expect(parseRetryAfter("Mon Jan 01 00:00:04 2024", now)).to.equal(4000);
  });

  it("reads an RFC 850 two-digit year as the most recent such year not over 50 years ahead", () => {
    const in2060 = Date.parse("2060-01-01T00:00:00Z");
    expect(parseRetryAfter("Monday, 01-Jan-24 00:00:00 GMT", in2060)).to.equal(0); // 2024, past
    expect(parseRetryAfter("Friday, 01-Jan-99 00:00:00 GMT", now)).to.equal(0); // 1999, not 2099
  });

  it("rejects garbage, negative and fractional values, and dates Date.parse would guess at", () => {
    for (const v of ["", "soon", "-1", "1.5", "1e3", undefined, "foo 1", "Nov 2", "Mon, 1 Jan 2024 00:00:05 GMT", "Mon, 31 Feb 2024 00:00:05 GMT", "Mon, 01 Jan 2024 24:00:05 GMT", "2024-01-01T00:00:05Z"]) {
      expect(parseRetryAfter(v, now), String(v)).to.equal(undefined);
    }
  });

  it("caps the delay", () => {
    expect(retryAfterDelay("3600", 2000, now)).to.equal(2000);
    expect(retryAfterDelay("1", 2000, now)).to.equal(1000);
    expect(retryAfterDelay("nope", 2000, now)).to.equal(undefined);
  });
});
