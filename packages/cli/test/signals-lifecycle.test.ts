import { expect } from "chai";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createTestCa } from "@switchyard/test-utils";
import { cleanup, client, startBackend, startCli, tmpFile } from "./helpers.js";

const yaml = (port: number, listeners = "", extra = "") => `listeners:
  - { name: edge, protocol: tcp, host: 127.0.0.1, port: 0 }
${listeners}routes:
  - { name: main, listener: edge, targets: ["127.0.0.1:${port}"] }
${extra}`;

/** An ES module config whose default export takes a while: it prints "loading config" when it starts. */
const slowMjs = (port: number, ms = 800) => `export default async () => {
  process.stdout.write("loading config\\n");
  await new Promise((r) => setTimeout(r, ${ms}));
  return {
    listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }],
    routes: [{ name: "main", listener: "edge", targets: ["127.0.0.1:${port}"] }],
  };
};
`;

const lines = (out: string, msg: string) => out.split("\n").filter((l) => l.includes(`"msg":"${msg}"`));

describe("signals while the proxy starts", () => {
  afterEach(cleanup);

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`a ${signal} while an async ES module config loads closes the proxy right after start (exit 0)`, async () => {
      const backend = await startBackend("b");
      const cli = startCli(["--config", tmpFile("c.mjs", slowMjs(backend))]);
      await cli.waitFor(/^loading config$/);
      cli.process.kill(signal);
      expect(await cli.exited, cli.stderr()).to.equal(0);
      const out = cli.stdout();
      expect(out).to.match(/^listening edge tcp 127\.0\.0\.1:\d+$/m);
      expect(lines(out, "shutdown")).to.have.length(1);
      expect(lines(out, "shutdown")[0]).to.include(`"signal":"${signal}"`);
      expect(lines(out, "shutdown.done")).to.have.length(1);
    });
  }

  it("a SIGHUP while an async ES module config loads reloads once after start, with the file as it is by then", async () => {
    const oldPort = await startBackend("old");
    const newPort = await startBackend("new");
    const file = tmpFile("c.mjs", slowMjs(oldPort));
    const cli = startCli(["--config", file]);
    await cli.waitFor(/^loading config$/);
    // edited (and signalled twice) after the start read it: one reload applies it
    writeFileSync(file, slowMjs(newPort, 10));
    cli.process.kill("SIGHUP");
    cli.process.kill("SIGHUP");
    const { edge } = await cli.listening(1);
    await cli.waitFor(/"msg":"reload\.ok"/);
    const c = await client(edge!);
    expect(await c.ask("x")).to.equal("new:x");
    c.socket.end();
    expect(cli.stdout().split("\n").filter((l) => l === "loading config")).to.have.length(2);
    expect(lines(cli.stdout(), "reload.ok")).to.have.length(1);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });
});

describe("SIGHUP around shutdown and plugin instances", () => {
  afterEach(cleanup);

  it("skips a SIGHUP that arrives while connections drain after SIGTERM (reload.skipped)", async () => {
    const backend = await startBackend("b");
    const file = tmpFile("c.yaml", yaml(backend, "", "shutdownTimeout: 10000\n"));
    const cli = startCli(["--config", file]);
    const { edge } = await cli.listening(1);
    const held = await client(edge!);
    expect(await held.ask("a")).to.equal("b:a");
    cli.process.kill("SIGTERM");
    await cli.waitFor(/"msg":"shutdown"/);
    // the file now adds a listener: nothing of it may be applied to a proxy that is closing
    writeFileSync(file, yaml(backend, "  - { name: extra, protocol: tcp, host: 127.0.0.1, port: 0 }\n", "shutdownTimeout: 10000\n"));
    cli.process.kill("SIGHUP");
    const skipped = await cli.waitFor(/"msg":"reload\.skipped"/);
    expect(JSON.parse(skipped.input!)).to.include({ level: "warn", reason: "shutting down" });
    // the held connection still drains normally
    expect(await held.ask("b")).to.equal("b:b");
    held.socket.end();
    await once(held.socket, "close");
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout()).to.not.match(/^listening extra /m);
    expect(cli.stdout()).to.not.match(/"msg":"reload\.(ok|failed|listener-failed)"/);
  });

  it("refuses `sni: ~` on SIGHUP as reload.invalid (not reload.failed) and keeps serving", async () => {
    const leaf = createTestCa().issue({ commonName: "localhost" });
    const backend = await startBackend("b");
    const tls = "{ name: s, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./leaf.crt, key: ./leaf.key } }";
    const file = tmpFile("c.yaml", yaml(backend, `  - ${tls}\n`));
    tmpFile("leaf.crt", leaf.cert, dirname(file));
    tmpFile("leaf.key", leaf.key, dirname(file));
    const cli = startCli(["--config", file]);
    const { edge } = await cli.listening(2);
    writeFileSync(file, yaml(backend, `  - ${tls.replace("key: ./leaf.key", "key: ./leaf.key, sni: ~")}\n`));
    cli.process.kill("SIGHUP");
    const line = await cli.waitFor(/"msg":"reload\.(invalid|failed)"/);
    const logged = JSON.parse(line.input!) as { msg: string; problems: string[] };
    expect(logged.msg).to.equal("reload.invalid");
    expect(logged.problems).to.deep.equal(["listeners[1].tls.sni: must be an object"]);
    const c = await client(edge!);
    expect(await c.ask("x")).to.equal("b:x");
    c.socket.end();
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("warns that adding or removing a plugin instance of an ES module config needs a restart", async () => {
    const backend = await startBackend("b");
    const mjs = (plugins: string) => `class AuditPlugin { name = "audit"; apply() {} }
class OtherPlugin { name = "other"; apply() {} }
export default {
  listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }],
  routes: [{ name: "main", listener: "edge", targets: ["127.0.0.1:${backend}"] }],
  plugins: [${plugins}],
};
`;
    const file = tmpFile("c.mjs", mjs("new AuditPlugin()"));
    const cli = startCli(["--config", file]);
    await cli.listening(1);
    const reload = async (plugins: string, n: number) => {
      writeFileSync(file, mjs(plugins));
      cli.process.kill("SIGHUP");
      for (let i = 0; lines(cli.stdout(), "reload.ok").length < n; i++) {
        if (i > 500) throw new Error(`no reload.ok #${n}\n${cli.stdout()}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      // the warning follows reload.ok in the same tick
      return lines(cli.stdout(), "reload.restart-needed").map((l) => (JSON.parse(l) as { notApplied: string[] }).notApplied);
    };
    // the same instances again (new objects, as every read of the file makes them): nothing to say
    expect(await reload("new AuditPlugin()", 1)).to.deep.equal([]);
    expect(await reload("", 2)).to.deep.equal([["plugins removed (audit (instance))"]]);
    expect(await reload("new AuditPlugin(), new AuditPlugin(), new OtherPlugin()", 3)).to.deep.equal([
      ["plugins removed (audit (instance))"],
      ["plugins added (audit (instance), other (instance))"],
    ]);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });
});
