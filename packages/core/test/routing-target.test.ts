import { expect } from "chai";
import { ConfigError, formatTarget, parseTarget } from "@switchyard/core";

describe("routing: parseTarget", () => {
  it("parses host:port", () => {
    expect(parseTarget("db.internal:5432")).to.deep.equal({ host: "db.internal", port: 5432 });
  });

  it("parses a bracketed IPv6 address with port and drops the brackets", () => {
    expect(parseTarget("[::1]:5432")).to.deep.equal({ host: "::1", port: 5432 });
  });

  it("defaults http:// to port 80 and keeps the scheme, without TLS", () => {
    const t = parseTarget("http://backend");
    expect(t).to.deep.equal({ host: "backend", port: 80, scheme: "http" });
    expect(t.tls).to.equal(undefined);
  });

  it("defaults https:// to port 443 and turns TLS origination on", () => {
    expect(parseTarget("https://api.example.com")).to.deep.equal({
      host: "api.example.com",
      port: 443,
      scheme: "https",
      tls: {},
    });
    expect(parseTarget("https://[::1]:8443/")).to.deep.equal({ host: "::1", port: 8443, scheme: "https", tls: {} });
  });

  it("accepts an explicit port and a lone trailing slash in URLs", () => {
    expect(parseTarget("http://h:8080/")).to.deep.equal({ host: "h", port: 8080, scheme: "http" });
  });

  it("accepts objects and maps tls: true to default TLS options", () => {
    expect(parseTarget({ host: "a", port: 1, tls: true })).to.deep.equal({ host: "a", port: 1, tls: {} });
    expect(parseTarget({ host: "a", port: 1, tls: false })).to.deep.equal({ host: "a", port: 1 });
    const ca = "---ca---";
    expect(parseTarget({ host: "a", port: 1, tls: { ca, servername: "x" } }).tls).to.deep.equal({ ca, servername: "x" });
  });

  it("keeps meta and accepts port 0 and 65535", () => {
    expect(parseTarget({ host: "a", port: 0, meta: { zone: "eu" } }).meta).to.deep.equal({ zone: "eu" });
    expect(parseTarget("a:65535").port).to.equal(65535);
    expect(parseTarget("a:0").port).to.equal(0);
  });

  it("returns frozen objects, with frozen TLS options", () => {
    const t = parseTarget({ host: "a", port: 1, tls: { servername: "s" } });
    expect(Object.isFrozen(t)).to.equal(true);
    expect(Object.isFrozen(t.tls)).to.equal(true);
    expect(Object.isFrozen(parseTarget("a:1"))).to.equal(true);
  });

  it("returns an already parsed target unchanged (identity kept)", () => {
    const t = parseTarget("a:1");
    expect(parseTarget(t)).to.equal(t);
  });

  it("does not share state with the input object", () => {
    const input = { host: "a", port: 1, tls: { servername: "s" } };
    const t = parseTarget(input);
    input.tls.servername = "changed";
    expect(t.tls?.servername).to.equal("s");
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ["a host without port", "backend", /missing port/],
    ["a host with an empty port", "backend:", /missing port/],
    ["a bracketed IPv6 without port", "[::1]", /missing port/],
    ["a port above 65535", "h:65536", /0-65535/],
    ["a non-integer port", "h:1.5", /0-65535/],
    ["a negative port", "h:-1", /0-65535/],
    ["an empty host", ":80", /empty host/],
    ["an unsupported scheme", "ftp://h:21", /unsupported scheme "ftp:"/],
    ["a URL with a path", "http://h/api", /path/],
    ["a URL with a query", "http://h/?x=1", /query/],
    ["a URL with credentials", "http://u:p@h", /credentials/],
    ["a URL port out of range", "https://h:70000", /0-65535/],
    ["a URL with an empty host", "http://:80", /empty host/],
    ["an unbracketed IPv6 address", "::1:80", /brackets/],
    ["an object without port", { host: "a" }, /missing port/],
    ["an object with a fractional port", { host: "a", port: 1.5 }, /0-65535/],
    ["an object with an empty host", { host: "  ", port: 1 }, /empty host/],
    ["an object with a bad tls", { host: "a", port: 1, tls: "yes" }, /tls must be/],
    ["a number", 42, /expected/],
  ];
  for (const [what, input, message] of bad) {
    it(`throws ConfigError for ${what}`, () => {
      expect(() => parseTarget(input as string)).to.throw(ConfigError, message);
    });
  }
});

describe("routing: formatTarget", () => {
  it("formats host:port, brackets IPv6 and keeps the scheme", () => {
    expect(formatTarget(parseTarget("a:1"))).to.equal("a:1");
    expect(formatTarget(parseTarget("[::1]:5432"))).to.equal("[::1]:5432");
    expect(formatTarget(parseTarget("https://h"))).to.equal("https://h:443");
  });

  it("round-trips through parseTarget", () => {
    for (const s of ["a:1", "[fe80::1]:80", "http://h:8080", "https://[::1]:8443"]) {
      expect(parseTarget(formatTarget(parseTarget(s)))).to.deep.equal(parseTarget(s));
    }
  });
});
