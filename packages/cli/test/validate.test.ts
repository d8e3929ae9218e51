import { expect } from "chai";
import { defineConfig, PROTOCOLS, validateConfig } from "@switchyard/cli";

describe("validateConfig", () => {
  it("accepts every documented field and applies defaults", () => {
    const config = defineConfig({
      listeners: [
        { name: "a", protocol: "tcp", port: 1, timeouts: { idle: 5 }, maxConnections: 3, options: {} },
        {
          name: "b",
          protocol: "http",
          host: "::1",
          port: 0,
          tls: { cert: "c.pem", key: "k.pem", sni: { "*.x": { cert: "c2", key: "k2" } }, minVersion: "TLSv1.3", ciphers: "TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384", honorCipherOrder: true },
        },
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
    expect(Object.keys(PROTOCOLS)).to.deep.equal(["tcp", "http", "postgres", "mysql", "smtp"]);
    expect(PROTOCOLS.tcp).to.equal(null);
    expect(PROTOCOLS.http).to.deep.equal({ package: "@switchyard/protocol-http", export: "HttpProtocol" });
    expect(PROTOCOLS.smtp).to.deep.equal({ package: "@switchyard/protocol-smtp", export: "SmtpProtocol" });
  });

  it("checks the listener TLS settings core takes (minVersion, ciphers, honorCipherOrder), with the closest name or value", () => {
    const { problems } = validateConfig({
      listeners: [
        { name: "a", protocol: "tcp", port: 1, tls: { cert: "c", key: "k", minVersion: "TLSv1.1", ciphers: "NO-SUCH-CIPHER", honorCipherOrder: "yes" } },
        { name: "b", protocol: "tcp", port: 2, tls: { cert: "c", key: "k", minversion: "TLSv1.3", cipher: "HIGH", honorCipherorder: true } },
        { name: "c", protocol: "tcp", port: 3, tls: { cert: "c", key: "k", minVersion: "TLSV1.3", ciphers: "" } },
      ],
    });
    expect(problems).to.have.length(8);
    expect(problems.slice(0, 2)).to.deep.equal([
      "listeners[0].tls.honorCipherOrder: must be true or false",
      'listeners[0].tls.minVersion: must be one of "TLSv1.2", "TLSv1.3" (did you mean "TLSv1.2"?)',
    ]);
    expect(problems[2]).to.match(/^listeners\[0\]\.tls\.ciphers: is not an OpenSSL cipher list this Node accepts \(.*no cipher match\)$/);
    expect(problems.slice(3)).to.deep.equal([
      'listeners[1].tls.minversion: unknown field (did you mean "minVersion"?)',
      'listeners[1].tls.cipher: unknown field (did you mean "ciphers"?)',
      'listeners[1].tls.honorCipherorder: unknown field (did you mean "honorCipherOrder"?)',
      'listeners[2].tls.minVersion: must be one of "TLSv1.2", "TLSv1.3" (did you mean "TLSv1.3"?)',
      "listeners[2].tls.ciphers: must be a non-empty string",
    ]);
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
      'routes[0].lb: must be one of "round-robin", "least-connections", "random" (did you mean "round-robin"?)',
      'log.level: must be one of "debug", "info", "warn", "error", "silent"',
    ]);
  });
});
