import { expect } from "chai";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { dirname } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { createTestCa } from "@switchyard/test-utils";
import { cleanup, client, startBackend, startCli, tmpFile } from "./helpers.js";

// SIGHUP applies listener changes without a restart.
describe("SIGHUP reload of listeners", () => {
  afterEach(cleanup);

  const config = (backend: number, listeners: string, extra = "") => `listeners:
${listeners}
routes:
  - { name: main, targets: ["127.0.0.1:${backend}"] }
shutdownTimeout: 300
${extra}`;
  const tcp = (name: string, port = 0) => `  - { name: ${name}, protocol: tcp, host: 127.0.0.1, port: ${port} }`;

  async function refused(port: number): Promise<boolean> {
    const { connect } = await import("node:net");
    const s = connect(port, "127.0.0.1");
    return new Promise((resolve) => {
      s.once("connect", () => (s.destroy(), resolve(false)));
      s.once("error", () => resolve(true));
    });
  }

  it("binds an added listener (printing its listening line) and drains a removed one", async () => {
    const backend = await startBackend("b");
    const file = tmpFile("c.yaml", config(backend, `${tcp("one")}\n${tcp("two")}`));
    const cli = startCli(["--config", file]);
    const { one, two } = await cli.listening(2);
    const held = await client(two!);
    expect(await held.ask("x")).to.equal("b:x");

    writeFileSync(file, config(backend, `${tcp("one")}\n${tcp("three")}`));
    cli.process.kill("SIGHUP");
    const three = Number((await cli.waitFor(/^listening three tcp 127\.0\.0\.1:(\d+)$/))[1]);
    const fresh = await client(three);
    expect(await fresh.ask("y")).to.equal("b:y");
    expect(await (await client(one!)).ask("z")).to.equal("b:z");
    // "two" no longer accepts; its open connection is closed at the shutdown deadline (300 ms)
    expect(await refused(two!)).to.equal(true);
    await once(held.socket, "close");
    await cli.waitFor(/"msg":"reload\.listener-drained".*"listener":"two"/);
    const ok = await cli.waitFor(/"msg":"reload\.ok"/);
    const listeners = (JSON.parse(ok.input!) as { listeners: Record<string, string[]> }).listeners;
    expect(listeners).to.deep.equal({ added: ["three"], removed: ["two"], moved: [], reconfigured: [] });
    expect(cli.stdout()).to.not.match(/restart-needed/);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("applies route options for the protocol a listener moves to in the same reload", async () => {
    const { createServer: httpServer } = await import("node:http");
    const web = httpServer((req, res) => res.end(`path ${req.url}`));
    web.listen(0, "127.0.0.1");
    await once(web, "listening");
    try {
      const port = (web.address() as AddressInfo).port;
      const file = tmpFile(
        "c.yaml",
        `listeners: [{ name: a, protocol: tcp, host: 127.0.0.1, port: 0 }, { name: w, protocol: http, host: 127.0.0.1, port: 0 }]
routes: [{ name: r, listener: a, targets: ["127.0.0.1:${port}"] }]
shutdownTimeout: 300
`,
      );
      const cli = startCli(["--config", file]);
      await cli.listening(2);
      // a becomes an HTTP listener and its route gains an HTTP option: checked against what the
      // routes will serve, not the tcp listener a still is while routes are replaced
      writeFileSync(
        file,
        `listeners: [{ name: a, protocol: http, host: 127.0.0.1, port: 0 }, { name: w, protocol: http, host: 127.0.0.1, port: 0 }]
routes: [{ name: r, listener: a, match: { path: /x }, targets: ["http://127.0.0.1:${port}"], options: { stripPrefix: true } }]
shutdownTimeout: 300
`,
      );
      cli.process.kill("SIGHUP");
      const a = Number((await cli.waitFor(/^listening a http 127\.0\.0\.1:(\d+)$/))[1]);
      const ok = await cli.waitFor(/"msg":"reload\.ok"/);
      expect((JSON.parse(ok.input!) as { listeners: { moved: string[] } }).listeners.moved).to.deep.equal(["a"]);
      const res = await fetch(`http://127.0.0.1:${a}/x/y`);
      expect(await res.text()).to.equal("path /y");
      cli.process.kill("SIGTERM");
      expect(await cli.exited).to.equal(0);
    } finally {
      web.closeAllConnections();
      web.close();
    }
  });

  it("rotates a certificate renewed at the same path for new handshakes", async () => {
    const ca = createTestCa();
    const backend = await startBackend("tls");
    const file = tmpFile(
      "c.yaml",
      config(backend, "  - { name: secure, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./leaf.crt, key: ./leaf.key } }"),
    );
    const dir = dirname(file);
    const issue = () => {
      const leaf = ca.issue({ commonName: "localhost", altNames: ["localhost"] });
      tmpFile("leaf.crt", leaf.cert, dir);
      tmpFile("leaf.key", leaf.key, dir);
    };
    issue();
    const cli = startCli(["--config", file]);
    const { secure } = await cli.listening(1);
    const serial = async () => {
      const s = tlsConnect({ host: "127.0.0.1", port: secure!, ca: ca.cert, servername: "localhost" });
      s.on("error", () => {});
      await once(s, "secureConnect");
      const n = s.getPeerCertificate().serialNumber;
      s.destroy();
      return n;
    };
    const first = await serial();
    issue();
    cli.process.kill("SIGHUP");
    await cli.waitFor(/"msg":"reload\.ok".*"reconfigured":\["secure"\]/);
    expect(await serial()).to.not.equal(first);
    // a broken renewal is refused and the listener keeps serving the last good certificate
    const second = await serial();
    writeFileSync(`${dir}/leaf.crt`, "-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n");
    cli.process.kill("SIGHUP");
    await cli.waitFor(/"msg":"(reload\.invalid|reload\.listener-failed)"/);
    expect(await serial()).to.equal(second);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("keeps a listener on its old address when the new one cannot be bound", async () => {
    const backend = await startBackend("b");
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    const takenPort = (taken.address() as AddressInfo).port;
    try {
      const file = tmpFile("c.yaml", config(backend, tcp("edge")));
      const cli = startCli(["--config", file]);
      const { edge } = await cli.listening(1);
      writeFileSync(file, config(backend, tcp("edge", takenPort)));
      cli.process.kill("SIGHUP");
      await cli.waitFor(/"msg":"reload\.listener-kept"/);
      // bound again on the very port it had (it was configured with port 0)
      const lines = cli.stdout().split("\n").filter((l) => l.startsWith("listening edge "));
      expect(lines).to.deep.equal([`listening edge tcp 127.0.0.1:${edge}`, `listening edge tcp 127.0.0.1:${edge}`]);
      expect(await (await client(edge!)).ask("q")).to.equal("b:q");
      cli.process.kill("SIGTERM");
      expect(await cli.exited).to.equal(0);
    } finally {
      taken.close();
    }
  });
});
