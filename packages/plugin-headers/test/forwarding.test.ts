import { expect } from "chai";
import { appendForwarded, clientFromChain, formatForwarded, formatNode, forwardedFor, quoteIfNeeded } from "@switchyard/plugin-headers";

describe("forwardedFor", () => {
  it("replaces a client-supplied chain when the peer is not trusted", () => {
    expect(forwardedFor(["6.6.6.6, 7.7.7.7"], "10.1.2.3", false)).to.equal("10.1.2.3");
  });

  it("appends the peer to the chain when the peer is a trusted proxy", () => {
    expect(forwardedFor(["1.1.1.1, 2.2.2.2", "3.3.3.3"], "10.0.0.2", true)).to.equal("1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.2");
  });

  it("starts a chain when a trusted peer sent none", () => {
    expect(forwardedFor([], "10.0.0.2", true)).to.equal("10.0.0.2");
    expect(forwardedFor([" , "], "10.0.0.2", true)).to.equal("10.0.0.2");
  });

  it("writes IPv6 peers bare", () => {
    expect(forwardedFor([], "2001:db8::1", false)).to.equal("2001:db8::1");
  });

  it("finds the client as the first untrusted hop from the right", () => {
    const trusted = (ip: string) => ip.startsWith("10.");
    expect(clientFromChain(["1.1.1.1, 2.2.2.2, 10.0.0.5"], "10.0.0.1", trusted)).to.equal("2.2.2.2");
    expect(clientFromChain(["1.1.1.1"], "8.8.8.8", trusted)).to.equal("8.8.8.8");
    expect(clientFromChain(["10.0.0.9"], "10.0.0.1", trusted)).to.equal("10.0.0.9");
  });
});

describe("Forwarded (RFC 7239)", () => {
  it("writes an IPv4 node as a token", () => {
    expect(formatNode("192.0.2.43")).to.equal("192.0.2.43");
  });

  it("brackets and quotes IPv6 nodes", () => {
    expect(formatNode("2001:db8:cafe::17")).to.equal('"[2001:db8:cafe::17]"');
    expect(formatNode("[2001:db8::1]")).to.equal('"[2001:db8::1]"');
  });

  it("quotes a node with a port", () => {
    expect(formatNode("192.0.2.43", 47011)).to.equal('"192.0.2.43:47011"');
    expect(formatNode("2001:db8:cafe::17", 4711)).to.equal('"[2001:db8:cafe::17]:4711"');
  });

  it("writes unknown for an absent address and keeps obfuscated identifiers", () => {
    expect(formatNode(undefined)).to.equal("unknown");
    expect(formatNode("_hidden")).to.equal("_hidden");
  });

  it("formats an element with for, host and proto, quoting a host with a port", () => {
    expect(formatForwarded({ for: "192.0.2.60", host: "example.com", proto: "http" })).to.equal("for=192.0.2.60;host=example.com;proto=http");
    expect(formatForwarded({ for: "::1", host: "example.com:8080", proto: "https", by: "10.0.0.1" })).to.equal(
      'for="[::1]";by=10.0.0.1;host="example.com:8080";proto=https',
    );
  });

  it("escapes quotes and backslashes in quoted strings", () => {
    expect(quoteIfNeeded('a"b\\c d')).to.equal('"a\\"b\\\\c d"');
  });

  it("appends to a trusted peer's Forwarded and replaces an untrusted one", () => {
    expect(appendForwarded(["for=1.1.1.1", "for=2.2.2.2;proto=https"], "for=10.0.0.1", true)).to.equal(
      "for=1.1.1.1, for=2.2.2.2;proto=https, for=10.0.0.1",
    );
    expect(appendForwarded(["for=6.6.6.6"], "for=10.0.0.1", false)).to.equal("for=10.0.0.1");
  });
});
