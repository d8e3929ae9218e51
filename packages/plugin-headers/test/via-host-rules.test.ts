import { expect } from "chai";
import type { HeaderPairs } from "@switchyard/core";
import {
  appendVia,
  applyRules,
  formatHostHeader,
  HeadersPlugin,
  splitHost,
  splitVia,
  targetScheme,
  validateRules,
  viaEntry,
  viaHasLoop,
} from "@switchyard/plugin-headers";

describe("Via", () => {
  it("uses the real protocol version", () => {
    expect(viaEntry("1.1", "edge")).to.equal("1.1 edge");
    expect(viaEntry("1.0", "edge")).to.equal("1.0 edge");
  });

  it("appends to the last Via field value", () => {
    const h: HeaderPairs = [
      ["Via", "1.0 fred"],
      ["X", "y"],
      ["via", "1.1 p.example.net"],
    ];
    appendVia(h, "1.1 edge");
    expect(h).to.deep.equal([
      ["Via", "1.0 fred"],
      ["X", "y"],
      ["via", "1.1 p.example.net, 1.1 edge"],
    ]);
  });

  it("adds a Via field when there is none", () => {
    const h: HeaderPairs = [["Host", "a"]];
    appendVia(h, "1.1 edge");
    expect(h).to.deep.equal([
      ["Host", "a"],
      ["Via", "1.1 edge"],
    ]);
  });

  it("splits entries on commas outside comments", () => {
    expect(splitVia("1.0 fred, 1.1 p.example.net (Apache, v2)")).to.deep.equal(["1.0 fred", "1.1 p.example.net (Apache, v2)"]);
  });

  it("detects a loop when any Via entry names our pseudonym, case-insensitively", () => {
    expect(viaHasLoop([["Via", "1.1 a, 1.1 Edge (x)"]], "edge")).to.equal(true);
    expect(viaHasLoop([["Via", "1.1 a"], ["VIA", "HTTP/2 edge"]], "edge")).to.equal(true);
    expect(viaHasLoop([["Via", "1.1 edge2, 1.1 my-edge"]], "edge")).to.equal(false);
    expect(viaHasLoop([], "edge")).to.equal(false);
  });
});

describe("Host rewrite", () => {
  it("omits the port only for the scheme default", () => {
    expect(formatHostHeader("backend", 80, "http")).to.equal("backend");
    expect(formatHostHeader("backend", 443, "https")).to.equal("backend");
    expect(formatHostHeader("backend", 443, "http")).to.equal("backend:443");
    expect(formatHostHeader("backend", 80, "https")).to.equal("backend:80");
    expect(formatHostHeader("backend", 8080, "http")).to.equal("backend:8080");
  });

  it("brackets IPv6 targets", () => {
    expect(formatHostHeader("::1", 8080, "http")).to.equal("[::1]:8080");
    expect(formatHostHeader("::1", 80, "http")).to.equal("[::1]");
  });

  it("derives the scheme from the target", () => {
    expect(targetScheme({})).to.equal("http");
    expect(targetScheme({ tls: {} })).to.equal("https");
    expect(targetScheme({ scheme: "https" })).to.equal("https");
  });

  it("splits Host values", () => {
    expect(splitHost("a.example:81")).to.deep.equal({ host: "a.example", port: 81 });
    expect(splitHost("[::1]:81")).to.deep.equal({ host: "::1", port: 81 });
    expect(splitHost("a.example")).to.deep.equal({ host: "a.example", port: undefined });
  });
});

describe("header rules", () => {
  it("applies remove, then set, then append", () => {
    const h: HeaderPairs = [
      ["X-A", "1"],
      ["x-a", "2"],
      ["X-Drop", "d"],
      ["X-Keep", "k"],
    ];
    applyRules(h, { remove: ["x-drop"], set: { "X-A": "one", "X-New": "n" }, append: { "X-Keep": ["k2", "k3"], "X-A": "extra" } });
    expect(h).to.deep.equal([
      ["X-A", "one"],
      ["X-Keep", "k"],
      ["X-New", "n"],
      ["X-Keep", "k2"],
      ["X-Keep", "k3"],
      ["X-A", "extra"],
    ]);
  });

  it("rejects invalid names, CR/LF in values and unknown keys", () => {
    expect(() => validateRules({ set: { "Bad Name": "x" } }, "t")).to.throw(/invalid header name/);
    expect(() => validateRules({ set: { X: "a\r\nb" } }, "t")).to.throw(/CR, LF/);
    expect(() => validateRules({ add: {} }, "t")).to.throw(/unknown key/);
  });

  it("validates plugin options with ConfigError codes", () => {
    try {
      new HeadersPlugin({ trustedProxies: ["10.0.0.0/40"] });
      expect.fail("should throw");
    } catch (err) {
      expect((err as { code: string }).code).to.equal("PRX_ERR_CONFIG");
    }
    expect(() => new HeadersPlugin({ pseudonym: "has space" })).to.throw(/pseudonym/);
    expect(() => new HeadersPlugin({ nope: 1 } as never)).to.throw(/unknown option/);
    expect(() => new HeadersPlugin({ routes: { api: { set: { "X-A": "1" } } } as never })).to.throw(
      'HeadersPlugin: routes.api: unknown key "set" (put "set" under "request" or "response")',
    );
    expect(() => new HeadersPlugin({ routes: { api: { request: { set: { "X-A": "1" } } } } })).not.to.throw();
    expect(() => new HeadersPlugin({ trustedProxies: ["10.0.0.0/8", "::1", "fd00::/8"], rewriteHost: "api.internal:8443" })).not.to.throw();
  });
});
