import { expect } from "chai";
import { ConfigError } from "@switchyard/core";
import { compileGlob, compileHostGlob, normalizeHost } from "../dist/routing/glob.js";

describe("routing: normalizeHost", () => {
  it("strips the port, IPv6 brackets and one trailing dot, and lowercases", () => {
    expect(normalizeHost("Example.COM:8080")).to.equal("example.com");
    expect(normalizeHost("example.com.")).to.equal("example.com");
    expect(normalizeHost("example.com.:443")).to.equal("example.com");
    expect(normalizeHost("[::1]:80")).to.equal("::1");
    expect(normalizeHost("[FE80::1]")).to.equal("fe80::1");
    expect(normalizeHost("fe80::1")).to.equal("fe80::1");
  });

  it("returns the very same string when nothing changes", () => {
    const s = "already.normal";
    expect(normalizeHost(s)).to.equal(s);
  });
});

describe("routing: host globs", () => {
  it("matches exact names case-insensitively, with port or trailing dot", () => {
    const g = compileHostGlob("Example.com");
    for (const v of ["example.com", "EXAMPLE.COM", "example.com:8080", "example.com.", "Example.Com.:443"]) {
      expect(g.match(v), v).to.equal(true);
    }
    expect(g.match("www.example.com")).to.equal(false);
    expect(g.match("example.co")).to.equal(false);
    expect(g.match("example.com.evil")).to.equal(false);
  });

  it("matches one label with *.", () => {
    const g = compileHostGlob("*.example.com");
    expect(g.match("a.example.com")).to.equal(true);
    expect(g.match("A.EXAMPLE.com:80")).to.equal(true);
    expect(g.match("example.com")).to.equal(false);
    expect(g.match("a.b.example.com")).to.equal(false);
    expect(g.match(".example.com")).to.equal(false);
    expect(g.match("aexample.com")).to.equal(false);
  });

  it("matches * inside a label without crossing dots", () => {
    const g = compileHostGlob("api-*.example.com");
    expect(g.match("api-v2.example.com")).to.equal(true);
    expect(g.match("api-.example.com")).to.equal(true);
    expect(g.match("api-v2.x.example.com")).to.equal(false);
    expect(g.match("web-v2.example.com")).to.equal(false);
    const mid = compileHostGlob("www.*.example.com");
    expect(mid.match("www.eu.example.com")).to.equal(true);
    expect(mid.match("www.example.com")).to.equal(false);
  });

  it("matches any depth with a leading **. but not the apex", () => {
    const g = compileHostGlob("**.example.com");
    expect(g.match("a.example.com")).to.equal(true);
    expect(g.match("a.b.c.example.com")).to.equal(true);
    expect(g.match("example.com")).to.equal(false);
    expect(g.match("badexample.com")).to.equal(false);
  });

  it("matches anything with a lone * or **", () => {
    for (const p of ["*", "**"]) {
      const g = compileHostGlob(p);
      for (const v of ["a", "a.b.c", "10.0.0.1", "[::1]:80", ""]) expect(g.match(v), `${p} ${v}`).to.equal(true);
    }
  });

  it("normalises patterns (case, trailing dot, IPv6 brackets)", () => {
    expect(compileHostGlob("*.EXAMPLE.com.").match("x.example.com")).to.equal(true);
    expect(compileHostGlob("[::1]").match("[::1]:443")).to.equal(true);
  });

  it("rejects malformed patterns", () => {
    expect(() => compileHostGlob("")).to.throw(ConfigError, /empty/);
    expect(() => compileHostGlob("example.com:80")).to.throw(ConfigError, /port/);
    expect(() => compileHostGlob("a..b")).to.throw(ConfigError, /empty label/);
    expect(() => compileHostGlob("a.**.b")).to.throw(ConfigError, /\*\*/);
  });

  it("stays fast on hostile values (no catastrophic backtracking)", () => {
    const g = compileHostGlob("*a*a*a*a*a*b.example.com");
    const start = process.hrtime.bigint();
    expect(g.match(`${"a".repeat(5000)}.example.com`)).to.equal(false);
    expect(Number(process.hrtime.bigint() - start) / 1e6).to.be.below(500);
  });

  it("scores exact > fewer wildcards > longer literal, and a lone * lowest", () => {
    const exact = compileHostGlob("api.example.com").score;
    const one = compileHostGlob("*.example.com").score;
    const oneShort = compileHostGlob("*.ex.com").score;
    const deep = compileHostGlob("**.example.com").score;
    const two = compileHostGlob("*.*.example.com").score;
    const all = compileHostGlob("*").score;
    expect(exact).to.be.above(one);
    expect(one).to.be.above(oneShort);
    expect(one).to.be.above(deep);
    expect(one).to.be.above(two);
    expect(Math.min(one, deep, two, oneShort)).to.be.above(all);
    expect(all).to.equal(0);
  });

  it("exposes test as a detached alias of match", () => {
    const { test } = compileHostGlob("*.a.com");
    expect(["x.a.com", "a.com"].filter(test)).to.deep.equal(["x.a.com"]);
  });
});

describe("routing: plain globs", () => {
  it("matches exactly and case-sensitively without wildcards", () => {
    const g = compileGlob("orders");
    expect(g.match("orders")).to.equal(true);
    expect(g.match("Orders")).to.equal(false);
    expect(g.match("orders2")).to.equal(false);
  });

  it("* matches any run (also empty, also dots and slashes)", () => {
    const g = compileGlob("tenant_*");
    expect(g.match("tenant_")).to.equal(true);
    expect(g.match("tenant_42.a/b")).to.equal(true);
    expect(g.match("Tenant_42")).to.equal(false);
    expect(compileGlob("*_ro").match("app_ro")).to.equal(true);
    expect(compileGlob("a*b*c").match("aXXbYYc")).to.equal(true);
    expect(compileGlob("a*b*c").match("aXXcYYb")).to.equal(false);
  });

  it("? matches exactly one character", () => {
    const g = compileGlob("db?");
    expect(g.match("db1")).to.equal(true);
    expect(g.match("db")).to.equal(false);
    expect(g.match("db12")).to.equal(false);
  });

  it("a lone * matches anything", () => {
    expect(compileGlob("*").match("")).to.equal(true);
    expect(compileGlob("*").match("x")).to.equal(true);
  });

  it("scores exact > fewer wildcards > longer literal", () => {
    expect(compileGlob("app").score).to.be.above(compileGlob("app*").score);
    expect(compileGlob("app_*").score).to.be.above(compileGlob("ap*").score);
    // fewer wildcards win even against a longer literal part
    expect(compileGlob("a*").score).to.be.above(compileGlob("abcdef*g*").score);
    expect(compileGlob("app*").score).to.be.above(compileGlob("*p*").score);
    expect(compileGlob("*").score).to.equal(0);
  });
});
