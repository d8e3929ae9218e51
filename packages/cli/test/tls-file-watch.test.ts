import { expect } from "chai";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createTestCa, type CertPair } from "@switchyard/test-utils";
import { askOverTls, cleanup, startBackend, startCli, tmpFile } from "./helpers.js";

// A CRL (or certificate) file replaced on disk reloads the listener as SIGHUP does, with no signal.
describe("TLS files watched by the command", () => {
  afterEach(cleanup);
  const ca = createTestCa("CLI watch CA");
  const server = ca.issue({ commonName: "localhost", altNames: ["localhost"] });
  const mallory = ca.issue({ commonName: "mallory", client: true });

  const ask = (port: number, who: CertPair) => askOverTls(port, ca.cert, who);

  it("reloads when the CRL file changes: the newly revoked certificate is refused", async () => {
    const backend = await startBackend("b");
    const file = tmpFile(
      "w.yaml",
      `listeners:
  - { name: secure, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./s.crt, key: ./s.key, ca: ./ca.crt, verifyClient: required, crl: ./ca.crl } }
routes:
  - { name: main, targets: ["127.0.0.1:${backend}"] }
log: { level: info }
shutdownTimeout: 300
`,
    );
    const dir = dirname(file);
    tmpFile("s.crt", server.cert, dir);
    tmpFile("s.key", server.key, dir);
    tmpFile("ca.crt", ca.cert, dir);
    tmpFile("ca.crl", ca.crl([]), dir);
    const cli = startCli(["--config", file]);
    const { secure } = await cli.listening(1);
    expect(await ask(secure!, mallory)).to.equal("b:x");

    writeFileSync(join(dir, "ca.crl"), ca.crl([mallory.cert]));
    await cli.waitFor(/"msg":"reload\.tls-files".*ca\.crl/, 8000);
    await cli.waitFor(/"msg":"reload\.ok".*"reconfigured":\["secure"\]/, 8000);
    expect(await ask(secure!, mallory)).to.equal("");
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });
});
