import { expect } from "chai";
import { IpMatcher } from "@switchyard/core";
import { embeddedIpv4, isRefusedAddress } from "../dist/internal/ssrf.js";
import { formatIp, parseIp } from "../dist/routing/cidr.js";

describe("routing: isRefusedAddress", () => {
  const refused: Array<[string, string[]]> = [
    ["loopback 127/8", ["127.0.0.1", "127.255.255.254"]],
    ["IPv6 loopback", ["::1", "0:0:0:0:0:0:0:1"]],
    ["private 10/8", ["10.0.0.1", "10.255.255.255"]],
    ["private 172.16/12", ["172.16.0.1", "172.31.255.255"]],
    ["private 192.168/16", ["192.168.0.1", "192.168.255.255"]],
    ["unique local fc00::/7", ["fc00::1", "fd12:3456::1"]],
    ["link-local 169.254/16 and the metadata address", ["169.254.0.1", "169.254.169.254"]],
    ["IPv6 link-local fe80::/10", ["fe80::1", "febf::1", "fe80::1%eth0"]],
    ["unspecified 0.0.0.0/8", ["0.0.0.0", "0.1.2.3"]],
    ["IPv6 unspecified", ["::"]],
    ["CGNAT 100.64/10", ["100.64.0.1", "100.127.255.255"]],
    ["multicast 224/4", ["224.0.0.1", "239.255.255.255"]],
    ["reserved 240/4 and broadcast", ["240.0.0.1", "255.255.255.255"]],
    ["IPv6 multicast ff00::/8", ["ff02::1", "ff05::2"]],
    ["IPv4-mapped private", ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:a9fe:a9fe"]],
    ["NAT64 with private IPv4", ["64:ff9b::127.0.0.1", "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe"]],
    ["6to4 with private IPv4", ["2002:7f00:1::", "2002:c0a8:101::1", "2002:a9fe:a9fe::"]],
    ["documentation and benchmarking ranges", ["192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1", "2001:db8::1"]],
    ["non-addresses", ["localhost", "", "example.com"]],
  ];
  for (const [what, ips] of refused) {
    it(`refuses ${what}`, () => {
      for (const ip of ips) expect(isRefusedAddress(ip), ip).to.equal(true);
    });
  }

  it("lets public addresses through, also embedded ones", () => {
    for (const ip of ["8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255",
      "169.253.255.255", "223.255.255.255", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
      "2002:808:808::1", "fbff::1"]) {
      expect(isRefusedAddress(ip), ip).to.equal(false);
    }
  });

  it("allows what the allow-list matches, as given or through the embedded IPv4", () => {
    const allow = new IpMatcher(["10.0.0.0/8", "::1", "169.254.169.254"]);
    expect(isRefusedAddress("10.1.2.3", allow)).to.equal(false);
    expect(isRefusedAddress("::ffff:10.1.2.3", allow)).to.equal(false);
    expect(isRefusedAddress("64:ff9b::a01:203", allow)).to.equal(false);
    expect(isRefusedAddress("::1", allow)).to.equal(false);
    expect(isRefusedAddress("169.254.169.254", allow)).to.equal(false);
    expect(isRefusedAddress("169.254.169.253", allow)).to.equal(true);
    expect(isRefusedAddress("127.0.0.1", allow)).to.equal(true);
    expect(isRefusedAddress("192.168.0.1", allow)).to.equal(true);
  });

  it("extracts embedded IPv4 from mapped, NAT64 and 6to4 addresses", () => {
    const e = (ip: string) => {
      const v = embeddedIpv4(parseIp(ip) as bigint);
      return v === undefined ? undefined : formatIp(v);
    };
    expect(e("::ffff:1.2.3.4")).to.equal("1.2.3.4");
    expect(e("64:ff9b::1.2.3.4")).to.equal("1.2.3.4");
    expect(e("2002:102:304:5::6")).to.equal("1.2.3.4");
    expect(e("2001:db8::1")).to.equal(undefined);
  });
});
