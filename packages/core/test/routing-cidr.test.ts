import { expect } from "chai";
import { ConfigError, IpMatcher } from "@switchyard/core";
import { formatIp, normalizeIp, parseCidr, parseIp } from "../dist/routing/cidr.js";

describe("routing: parseIp / normalizeIp", () => {
  it("parses IPv4 as its IPv4-mapped value, in every spelling", () => {
    const v = parseIp("10.0.0.1");
    expect(v).to.equal(0xffff0a000001n);
    expect(parseIp("::ffff:10.0.0.1")).to.equal(v);
    expect(parseIp("::FFFF:a00:1")).to.equal(v);
    expect(parseIp("0:0:0:0:0:ffff:10.0.0.1")).to.equal(v);
  });

  it("parses IPv6 forms: ::, compressed, full, zone ids and brackets", () => {
    expect(parseIp("::")).to.equal(0n);
    expect(parseIp("::1")).to.equal(1n);
    expect(parseIp("[::1]")).to.equal(1n);
    expect(parseIp("fe80::1%eth0")).to.equal((0xfe80n << 112n) | 1n);
    expect(parseIp("2001:db8:0:0:0:0:0:1")).to.equal(parseIp("2001:db8::1"));
    expect(parseIp("1::")).to.equal(1n << 112n);
  });

  it("rejects what is not an address", () => {
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-1", "a.b.c.d", "1:2:3:4:5:6:7:8:9",
      "1::2::3", ":1", "1:", "12345::", "g::1", "1.2.3.4::", "localhost"]) {
      expect(parseIp(bad), bad).to.equal(undefined);
    }
  });

  it("normalizeIp strips the mapping, zone ids and brackets", () => {
    expect(normalizeIp("::ffff:10.0.0.1")).to.equal("10.0.0.1");
    expect(normalizeIp("::FFFF:a00:1")).to.equal("10.0.0.1");
    expect(normalizeIp("fe80::1%eth0")).to.equal("fe80::1");
    expect(normalizeIp("[2001:DB8::1]")).to.equal("2001:db8::1");
    expect(normalizeIp("192.168.1.1")).to.equal("192.168.1.1");
  });

  it("formatIp writes RFC 5952 text and dotted quads", () => {
    expect(formatIp(parseIp("2001:db8:0:0:1:0:0:1") as bigint)).to.equal("2001:db8::1:0:0:1");
    expect(formatIp(0n)).to.equal("::");
    expect(formatIp(parseIp("::ffff:1.2.3.4") as bigint)).to.equal("1.2.3.4");
  });
});

describe("routing: IpMatcher", () => {
  it("matches IPv4 CIDRs on their boundaries", () => {
    const m = new IpMatcher(["10.0.0.0/8", "192.168.1.0/24"]);
    expect(m.matches("10.0.0.0")).to.equal(true);
    expect(m.matches("10.255.255.255")).to.equal(true);
    expect(m.matches("11.0.0.0")).to.equal(false);
    expect(m.matches("9.255.255.255")).to.equal(false);
    expect(m.matches("192.168.1.77")).to.equal(true);
    expect(m.matches("192.168.2.1")).to.equal(false);
  });

  it("treats IPv4-mapped IPv6 clients as IPv4 (and IPv4 entries match mapped clients)", () => {
    const m = new IpMatcher("10.0.0.0/8");
    expect(m.matches("::ffff:10.1.2.3")).to.equal(true);
    expect(m.matches("::ffff:11.1.2.3")).to.equal(false);
    const mapped = new IpMatcher("::ffff:10.0.0.1");
    expect(mapped.matches("10.0.0.1")).to.equal(true);
  });

  it("matches IPv6 CIDRs and single addresses", () => {
    const m = new IpMatcher(["2001:db8::/32", "::1", "fe80::/10"]);
    expect(m.matches("2001:db8:ffff::1")).to.equal(true);
    expect(m.matches("2001:db9::1")).to.equal(false);
    expect(m.matches("::1")).to.equal(true);
    expect(m.matches("::2")).to.equal(false);
    expect(m.matches("febf::1%eth0")).to.equal(true);
    expect(m.matches("fec0::1")).to.equal(false);
    expect(m.matches("10.0.0.1")).to.equal(false);
  });

  it("a single IPv4 address is a /32, /0 matches every IPv4 address", () => {
    const one = new IpMatcher("127.0.0.1");
    expect(one.matches("127.0.0.1")).to.equal(true);
    expect(one.matches("127.0.0.2")).to.equal(false);
    const all = new IpMatcher("0.0.0.0/0");
    expect(all.matches("8.8.8.8")).to.equal(true);
    expect(all.matches("::1")).to.equal(false);
  });

  it("masks host bits of a CIDR", () => {
    expect(new IpMatcher("10.1.2.3/8").matches("10.200.0.1")).to.equal(true);
  });

  it("never matches non-addresses", () => {
    expect(new IpMatcher("0.0.0.0/0").matches("not-an-ip")).to.equal(false);
  });

  it("reports prefixes in 128-bit space", () => {
    expect(parseCidr("10.0.0.0/8").prefix).to.equal(104);
    expect(parseCidr("fc00::/7").prefix).to.equal(7);
    expect(new IpMatcher(["10.0.0.0/8", "10.1.0.0/16"]).minPrefix).to.equal(104);
  });

  it("throws ConfigError on invalid CIDRs", () => {
    for (const bad of ["10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x", "host/8", "1.2.3.4/-1"]) {
      expect(() => new IpMatcher(bad), bad).to.throw(ConfigError, /CIDR/);
    }
    expect(() => new IpMatcher([])).to.throw(ConfigError);
  });
});
