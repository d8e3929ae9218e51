import { expect } from "chai";
import { prepareConfig } from "@switchyard/cli";

/** A listener's proxyProtocol and the tcp protocol's TLS / PROXY options from a config file. */
describe("PROXY protocol and TLS passthrough options in config files", () => {
  it("hands a listener's proxyProtocol and the tcp options to the proxy", async () => {
    const res = await prepareConfig(
      {
        listeners: [{ name: "t", protocol: "tcp", port: 0, proxyProtocol: { trustedProxies: ["10.0.0.0/8"], timeoutMs: 1000 }, options: { tlsPassthrough: true } }],
        routes: [{ listener: "t", match: { sni: "*.example" }, targets: ["127.0.0.1:1"], options: { proxyProtocol: "v2", tls: "passthrough" } }],
      },
      undefined,
    );
    if (!res.ok) throw new Error(res.problems.join("\n"));
    const listener = res.prepared.listeners[0]!;
    expect(listener.proxyProtocol).to.deep.equal({ trustedProxies: ["10.0.0.0/8"], timeoutMs: 1000 });
    expect(listener.options).to.deep.equal({ tlsPassthrough: true });
  });

  it("reports bad values with their config paths", async () => {
    const res = await prepareConfig(
      {
        listeners: [{ name: "t", protocol: "tcp", port: 0, proxyProtocol: { trustedProxies: ["10.0.0.0/99"], timeoutMs: -1 } }],
        routes: [{ listener: "t", targets: ["127.0.0.1:1"], options: { proxyProtocol: "v3", tls: "offload" } }],
      },
      undefined,
    );
    expect(res.ok).to.equal(false);
    if (res.ok) return;
    expect(res.problems).to.include.members([
      'listeners[0].proxyProtocol.trustedProxies: invalid CIDR "10.0.0.0/99": prefix length must be an integer 0-32',
      "listeners[0].proxyProtocol.timeoutMs must be a positive integer (ms)",
      'routes[0].options.tls must be "passthrough" or "terminate"',
    ]);
  });
});
