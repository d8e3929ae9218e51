import { expect } from "chai";
import { defineConfig, PROTOCOLS, validateConfig } from "@switchyard/cli";

describe("validateConfig", () => {
  it("accepts every documented field and applies defaults", () => {
    const config = defineConfig({
      listeners: [
        { name: "a", protocol: "tcp", port: 1, timeouts: { idle: 5 }, maxConnections: 3, options: {} },
        { name: "b", protocol: "http", host: "::1", port: 0, tls: { cert: "c.pem", key: "k.pem", sni: { "*.x": { cert: "c2", key: "k2" } } } },
      ],
      routes: [
        { name: "r", listener: ["a", "b"], match: { host: ["*.x", "y"], clientIp: ["::1", "10.0.0.0/8"], path: "/p", method: "GET" }, targets: ["[::1]:5432", "https://x", { host: "h", port: 2 }], lb: "random", priority: -1, options: { k: 1 } },
      ],
      plugins: [{ use: "x", options: 1 }],
      protocols: { http: {} },
      timeouts: { connect: 1 },
      shutdownTimeout: 0,
      log: { level: "silent" },
    });
    const { problems, config: out } = validateConfig(config);
    expect(problems).to.deep.equal([]);
    expect(out.listeners[0]!.host).to.equal("0.0.0.0");
    expect(out.listeners[1]!.host).to.equal("::1");
  });

  it("reports a config that is not an object", () => {
    expect(validateConfig(null).problems).to.deep.equal(["config: must be an object"]);
    expect(validateConfig([]).problems).to.deep.equal(["config: must be an object"]);
  });

  it("names the index of a bad listener reference in an array", () => {
    const { problems } = validateConfig({
      listeners: [{ name: "a", protocol: "tcp", port: 1 }],
      routes: [{ listener: ["a", "zz"], targets: ["h:1"] }],
    });
    expect(problems).to.deep.equal(['routes[0].listener[1]: no listener named "zz"']);
  });

  it("checks tls shapes and unknown protocols in the protocols section", () => {
    const { problems } = validateConfig({
      listeners: [{ name: "a", protocol: "tcp", port: 1, tls: { cert: "", requestCert: "yes", pem: 1 } }],
      protocols: { ftp: {}, http: 3 },
    });
    expect(problems).to.deep.equal([
      "listeners[0].tls.pem: unknown field",
      "listeners[0].tls.cert: must be a file path or PEM text",
      "listeners[0].tls.key: must be a file path or PEM text",
      "listeners[0].tls.requestCert: must be true or false",
      "protocols.ftp: unknown field",
      "protocols.http: must be an object",
    ]);
  });

  it("loads a package of this project for every built-in protocol but tcp, and none for protocols without one", () => {
    expect(Object.keys(PROTOCOLS)).to.deep.equal(["tcp", "http", "postgres", "mysql"]);
    expect(PROTOCOLS.tcp).to.equal(null);
    expect(PROTOCOLS.http).to.deep.equal({ package: "@switchyard/protocol-http", export: "HttpProtocol" });
  });

  it("suggests the closest name for unknown fields and values, but not for any short name", () => {
    const { problems } = validateConfig({
      listeners: [{ name: "a", protocl: "tcp", port: 1, tls: { cert: "c", key: "k", rejectUnauthorised: false, pem: 1 } }],
      routes: [{ targets: ["h:1"], lb: "round-robbin", match: { hots: "x" } }],
      log: { level: "warning" },
    });
    expect(problems).to.deep.equal([
      'listeners[0].protocl: unknown field (did you mean "protocol"?)',
      "listeners[0].protocol: is required",
      'listeners[0].tls.rejectUnauthorised: unknown field (did you mean "rejectUnauthorized"?)',
      "listeners[0].tls.pem: unknown field",
      'routes[0].match.hots: unknown field (did you mean "host"?)',
      'routes[0].lb: must be one of "round-robin", "least-connections", "random" (did you mean "round-robin"?)',
      'log.level: must be one of "debug", "info", "warn", "error", "silent"',
    ]);
  });
});
