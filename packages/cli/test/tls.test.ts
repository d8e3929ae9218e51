import { expect } from "chai";
import { once } from "node:events";
import { dirname } from "node:path";
import { connect } from "node:tls";
import { createTestCa } from "@switchyard/test-utils";
import { cleanup, runCli, startBackend, startCli, tmpFile } from "./helpers.js";

describe("listener tls from files", () => {
  afterEach(cleanup);

  it("reads cert and key paths relative to the config file and terminates TLS", async () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
    const backend = await startBackend("tls");
    const file = tmpFile(
      "c.yaml",
      `listeners:\n  - { name: secure, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./certs/leaf.crt, key: ./certs/leaf.key } }\nroutes:\n  - { listener: secure, targets: ["127.0.0.1:${backend}"] }\n`,
    );
    const certs = `${dirname(file)}/certs`;
    await import("node:fs").then((fs) => fs.mkdirSync(certs));
    tmpFile("leaf.crt", leaf.cert, certs);
    tmpFile("leaf.key", leaf.key, certs);

    const cli = startCli(["--config", file]);
    const { secure } = await cli.listening(1);
    const socket = connect({ host: "127.0.0.1", port: secure!, ca: ca.cert, servername: "localhost" });
    socket.on("error", () => {});
    await once(socket, "secureConnect");
    socket.setEncoding("utf8");
    socket.write("hi");
    const [answer] = (await once(socket, "data")) as [string];
    expect(answer).to.equal("tls:hi");
    socket.end();
    await cli.waitFor(/"msg":"connection\.close"/);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("rejects a key that does not match its certificate", async () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "localhost" });
    const file = tmpFile(
      "c.yaml",
      "listeners:\n  - { name: s, protocol: tcp, port: 0, tls: { cert: ./leaf.crt, key: ./leaf.key } }\nroutes: [{ targets: ['127.0.0.1:1'] }]\n",
    );
    tmpFile("leaf.crt", leaf.cert, dirname(file));
    tmpFile("leaf.key", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", dirname(file));
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.match(/\nlisteners\[0\]\.tls: invalid certificate or key: /);
  });

  it("passes minVersion, ciphers and honorCipherOrder to the listener: a TLS 1.2 client is refused under minVersion TLSv1.3", async () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
    const backend = await startBackend("tls13");
    const file = tmpFile(
      "c.yaml",
      `listeners:
  - name: secure
    protocol: tcp
    host: 127.0.0.1
    port: 0
    tls: { cert: ./leaf.crt, key: ./leaf.key, minVersion: TLSv1.3, ciphers: "TLS_CHACHA20_POLY1305_SHA256", honorCipherOrder: true }
routes:
  - { listener: secure, targets: ["127.0.0.1:${backend}"] }
`,
    );
    tmpFile("leaf.crt", leaf.cert, dirname(file));
    tmpFile("leaf.key", leaf.key, dirname(file));
    expect((await runCli(["check", file])).code).to.equal(0);
    const cli = startCli(["--config", file]);
    const { secure } = await cli.listening(1);

    const old = connect({ host: "127.0.0.1", port: secure!, ca: ca.cert, servername: "localhost", maxVersion: "TLSv1.2" });
    const [err] = (await once(old, "error")) as [Error & { code?: string }];
    expect(err.code ?? err.message).to.match(/ALERT_PROTOCOL_VERSION|protocol version|ECONNRESET/i);

    const modern = connect({ host: "127.0.0.1", port: secure!, ca: ca.cert, servername: "localhost" });
    modern.on("error", () => {});
    await once(modern, "secureConnect");
    expect(modern.getProtocol()).to.equal("TLSv1.3");
    expect(modern.getCipher().standardName).to.equal("TLS_CHACHA20_POLY1305_SHA256");
    modern.setEncoding("utf8");
    modern.write("hi");
    const [answer] = (await once(modern, "data")) as [string];
    expect(answer).to.equal("tls13:hi");
    modern.end();
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });
});
