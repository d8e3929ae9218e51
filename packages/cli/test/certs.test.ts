import { expect } from "chai";
import { once } from "node:events";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createTestCa, type CertPair } from "@switchyard/test-utils";
import { askOverTls, cleanup, runCli, startBackend, startCli, tmpFile } from "./helpers.js";

describe("switchyard certs", () => {
  afterEach(cleanup);

  it("writes a CA, a server and a client certificate, a CRL, and inspects them", async () => {
    const dir = dirname(tmpFile("keep", ""));
    const ca = await runCli(["certs", "ca", "--dir", dir, "--cn", "Dev CA"]);
    expect(ca.code, ca.stderr).to.equal(0);
    expect(statSync(join(dir, "ca-key.pem")).mode & 0o777).to.equal(0o600);
    expect((await runCli(["certs", "server", "--dir", dir, "--cn", "localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1"])).code).to.equal(0);
    const client = await runCli(["certs", "client", "--dir", dir, "--cn", "alice", "--name", "alice", "--san", "URI:spiffe://dev/ns/alice"]);
    expect(client.stdout.trim().split("\n")).to.deep.equal([join(dir, "alice.pem"), join(dir, "alice-key.pem")]);
    const inspect = await runCli(["certs", "inspect", join(dir, "alice.pem")]);
    expect(inspect.code).to.equal(0);
    expect(inspect.stdout).to.match(/^subject:\s+CN=alice$/m);
    expect(inspect.stdout).to.match(/^issuer:\s+CN=Dev CA$/m);
    expect(inspect.stdout).to.match(/^SANs:\s+URI:spiffe:\/\/dev\/ns\/alice$/m);
    expect(inspect.stdout).to.match(/^SHA-256:\s+([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
    expect((await runCli(["certs", "inspect", join(dir, "localhost.pem")])).stdout).to.match(/^SANs:\s+DNS:localhost, IP:127\.0\.0\.1$/m);
    expect((await runCli(["certs", "crl", "--dir", dir, "--revoke", join(dir, "alice.pem")])).code).to.equal(0);
    expect(readFileSync(join(dir, "ca-crl.pem"), "utf8")).to.match(/^-----BEGIN X509 CRL-----/);
    // nothing is overwritten without --force; bad usage exits 2
    const again = await runCli(["certs", "ca", "--dir", dir]);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.match(/ca\.pem exists \(--force overwrites it\)/);
    expect((await runCli(["certs", "server", "--dir", dir])).code).to.equal(2);
    expect((await runCli(["certs", "bogus"])).code).to.equal(2);
    expect(existsSync(join(dir, "bogus"))).to.equal(false);
  });
});

describe("listener verifyClient and crl from a config file", () => {
  afterEach(cleanup);
  const ca = createTestCa("CLI mTLS CA");
  const server = ca.issue({ commonName: "localhost", altNames: ["localhost"] });
  const alice = ca.issue({ commonName: "alice", client: true });
  const mallory = ca.issue({ commonName: "mallory", client: true });

  const ask = (port: number, who: CertPair, keep?: (s: TLSSocket) => void) => askOverTls(port, ca.cert, who, keep);

  it("reloads the CRL on SIGHUP: new handshakes see it, open connections stay, a bad CRL is refused and the old one kept", async () => {
    const backend = await startBackend("b");
    const file = tmpFile(
      "c.yaml",
      `listeners:
  - { name: secure, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./s.crt, key: ./s.key, ca: ./ca.crt, verifyClient: required, crl: ./ca.crl } }
routes:
  - { name: main, targets: ["127.0.0.1:${backend}"] }
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
    let held: TLSSocket | undefined;
    expect(await ask(secure!, mallory, (s) => (held = s))).to.equal("b:x");

    writeFileSync(join(dir, "ca.crl"), ca.crl([mallory.cert]));
    cli.process.kill("SIGHUP");
    await cli.waitFor(/"msg":"reload\.ok".*"reconfigured":\["secure"\]/);
    expect(await ask(secure!, mallory)).to.equal("");
    expect(await ask(secure!, alice)).to.equal("b:x");
    // the connection's log line names the certificate it came with
    await cli.waitFor(/"msg":"connection\.close".*"clientCert":\{"subject":"CN=alice","issuer":"CN=CLI mTLS CA","verified":true/);
    held!.write("y");
    expect(((await once(held!, "data")) as [Buffer])[0].toString()).to.equal("b:y");

    writeFileSync(join(dir, "ca.crl"), "-----BEGIN X509 CRL-----\nbroken\n-----END X509 CRL-----\n");
    cli.process.kill("SIGHUP");
    await cli.waitFor(/"msg":"(reload\.invalid|reload\.listener-failed)".*crl/);
    expect(await ask(secure!, mallory)).to.equal("");
    expect(await ask(secure!, alice)).to.equal("b:x");
    held!.destroy();
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("refuses an unknown verifyClient mode", async () => {
    const file = tmpFile("c.yaml", `listeners:\n  - { name: s, protocol: tcp, port: 0, tls: { cert: "-----BEGIN x", key: "-----BEGIN y", verifyClient: sometimes } }\nroutes: []\n`);
    const r = await runCli(["check", file]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/listeners\[0\]\.tls\.verifyClient.*"required", "optional", "optional-no-ca"/);
  });
});
