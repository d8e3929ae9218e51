import { expect } from "chai";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { cleanup, client, startBackend, startCli, tmpFile } from "./helpers.js";

const yaml = (port: number, extra = "") => `listeners:
  - { name: edge, protocol: tcp, host: 127.0.0.1, port: 0 }
routes:
  - { name: main, listener: edge, targets: ["127.0.0.1:${port}"] }
${extra}`;

const mjs = (port: number) => `export default {
  listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }],
  routes: [{ name: "main", listener: "edge", targets: ["127.0.0.1:${port}"] }],
};
`;

describe("SIGTERM / SIGINT", () => {
  afterEach(cleanup);

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`closes gracefully on ${signal}: an open connection finishes, then exit 0`, async () => {
      const backend = await startBackend("b");
      const cli = startCli(["--config", tmpFile("c.yaml", yaml(backend))]);
      const { edge } = await cli.listening(1);
      const c = await client(edge!);
      expect(await c.ask("one")).to.equal("b:one");
      cli.process.kill(signal);
      await cli.waitFor(/"msg":"shutdown".*"open":1/);
      // no new connections once closing
      const refused = await client(edge!).then(
        () => false,
        () => true,
      );
      expect(refused).to.equal(true);
      // the established one still works until the client is done with it
      expect(await c.ask("two")).to.equal("b:two");
      expect(cli.process.exitCode).to.equal(null);
      c.socket.end();
      await once(c.socket, "close");
      expect(await cli.exited).to.equal(0);
      expect(cli.stdout()).to.match(/"msg":"connection\.close".*"bytesIn":6,"bytesOut":10/);
    });
  }

  it("destroys connections still open at the shutdown deadline and exits 0", async () => {
    const backend = await startBackend("b");
    const cli = startCli(["--config", tmpFile("c.json", JSON.stringify({
      listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }],
      routes: [{ listener: "edge", targets: [`127.0.0.1:${backend}`] }],
      shutdownTimeout: 200,
    }))]);
    const { edge } = await cli.listening(1);
    const c = await client(edge!);
    expect(await c.ask("x")).to.equal("b:x");
    cli.process.kill("SIGTERM");
    await once(c.socket, "close");
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout()).to.match(/"reason":"shutdown"/);
  });
});

describe("SIGHUP reload", () => {
  afterEach(cleanup);

  for (const [name, make] of [["c.yaml", yaml], ["c.mjs", mjs]] as const) {
    it(`applies a new route target without dropping established connections (${name})`, async () => {
      const oldPort = await startBackend("old");
      const newPort = await startBackend("new");
      const file = tmpFile(name, make(oldPort));
      const cli = startCli(["--config", file]);
      const { edge } = await cli.listening(1);
      const established = await client(edge!);
      expect(await established.ask("a")).to.equal("old:a");

      writeFileSync(file, make(newPort));
      cli.process.kill("SIGHUP");
      await cli.waitFor(/"msg":"reload\.ok"/);
      expect(await established.ask("b")).to.equal("old:b");
      const fresh = await client(edge!);
      expect(await fresh.ask("c")).to.equal("new:c");

      // an invalid file changes nothing
      writeFileSync(file, name.endsWith(".yaml") ? yaml(newPort).replace(/targets: \[[^\]]*\]/, "targets: []") : "export default { listeners: [] };\n");
      cli.process.kill("SIGHUP");
      const bad = await cli.waitFor(/"msg":"reload\.invalid"/);
      const problems = (JSON.parse(bad.input!) as { problems: string[] }).problems;
      expect(problems).to.deep.equal([
        name.endsWith(".yaml") ? "routes[0].targets: must be a non-empty array" : "listeners: must be a non-empty array",
      ]);
      const after = await client(edge!);
      expect(await after.ask("d")).to.equal("new:d");
      expect(await established.ask("e")).to.equal("old:e");
      expect(await fresh.ask("f")).to.equal("new:f");
      expect(cli.process.exitCode).to.equal(null);

      cli.process.kill("SIGTERM");
      established.socket.end();
      fresh.socket.end();
      after.socket.end();
      expect(await cli.exited).to.equal(0);
    });
  }

  it("refuses a file whose route or listener options are wrong, and keeps serving with the old one", async () => {
    const oldPort = await startBackend("old");
    const newPort = await startBackend("new");
    const file = tmpFile("c.yaml", yaml(oldPort));
    const cli = startCli(["--config", file]);
    const { edge } = await cli.listening(1);

    const bad = yaml(newPort)
      .replace("port: 0 }", "port: 0, options: { idel: 5 } }")
      .replace(/targets: \[([^\]]*)\] }/, "targets: [$1], options: { retries: 2 } }");
    writeFileSync(file, bad);
    cli.process.kill("SIGHUP");
    const line = await cli.waitFor(/"msg":"reload\.invalid"/);
    expect((JSON.parse(line.input!) as { problems: string[] }).problems).to.deep.equal([
      'listeners[0].options: unknown option "idel" (protocol "tcp" takes only tlsPassthrough)',
      'routes[0].options: unknown option "retries" — no protocol or plugin on this route reads it',
    ]);
    const c = await client(edge!);
    expect(await c.ask("a")).to.equal("old:a");
    c.socket.end();
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("refuses route options of a plugin the file adds (a restart applies it) and keeps the old routes", async () => {
    const oldPort = await startBackend("old");
    const newPort = await startBackend("new");
    const file = tmpFile("c.yaml", yaml(oldPort));
    const cli = startCli(["--config", file]);
    const { edge } = await cli.listening(1);
    // valid as a file: the plugin it adds reads the option; the running proxy has no such plugin
    tmpFile(
      "weights.mjs",
      `export default class WeightPlugin {
  name = "WeightPlugin";
  routeOptions = ["weight"];
  apply() {}
}\n`,
      dirname(file),
    );
    writeFileSync(
      file,
      yaml(newPort, "plugins: [{ use: ./weights.mjs }]\nlog: { level: warn }\n").replace(/targets: \[([^\]]*)\] }/, "targets: [$1], options: { weight: 2 } }"),
    );
    cli.process.kill("SIGHUP");
    const line = await cli.waitFor(/"msg":"reload\.invalid"/);
    const logged = JSON.parse(line.input!) as { problems: string[]; note: string };
    expect(logged.problems).to.deep.equal(['route "main": options: unknown option "weight" — no protocol or plugin on this route reads it']);
    expect(logged.note).to.match(/need a restart/);
    const c = await client(edge!);
    expect(await c.ask("a")).to.equal("old:a");
    c.socket.end();
    // nothing of the file was applied: the log level is still info
    await cli.waitFor(/"msg":"connection\.close"/);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("applies a new log level", async () => {
    const port = await startBackend("b");
    const file = tmpFile("c.yaml", yaml(port, "log: { level: warn }\n"));
    const cli = startCli(["--config", file]);
    const { edge } = await cli.listening(1);
    const quiet = await client(edge!);
    expect(await quiet.ask("a")).to.equal("b:a");
    quiet.socket.end();
    await once(quiet.socket, "close");
    writeFileSync(file, yaml(port, "log: { level: info }\n"));
    cli.process.kill("SIGHUP");
    await cli.waitFor(/"msg":"reload\.ok"/); // an info line: printed only once the level changed
    const loud = await client(edge!);
    expect(await loud.ask("b")).to.equal("b:b");
    loud.socket.end();
    const loudPort = loud.socket.localPort;
    await cli.waitFor(new RegExp(`"msg":"connection\\.close".*"client":"127\\.0\\.0\\.1:${loudPort}"`));
    // the connection opened at level warn logged no open line; the one after the reload did
    const opens = cli.stdout().split("\n").filter((l) => l.includes('"msg":"connection.open"'));
    expect(opens).to.have.length(1);
    expect(opens[0]).to.include(`127.0.0.1:${loudPort}`);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("reconfigures plugins present before and after, and warns about changes that need a restart", async () => {
    const port = await startBackend("b");
    const plugins = (greeting: string, extra = "") => `plugins:
  - use: ./greeter.mjs
    options: { greeting: ${greeting} }
  - use: ./fixed.mjs
    options: { n: ${greeting === "hello" ? 1 : 2} }
${extra}`;
    const file = tmpFile("c.yaml", yaml(port, plugins("hello")));
    const dir = dirname(file);
    tmpFile(
      "greeter.mjs",
      `export default class GreeterPlugin {
  name = "GreeterPlugin";
  constructor(o) { this.o = o; }
  apply() {}
  reconfigure(o) { process.stdout.write("reconfigured " + JSON.stringify(o) + "\\n"); }
}\n`,
      dir,
    );
    tmpFile("fixed.mjs", `export class FixedPlugin { name = "FixedPlugin"; apply() {} }\n`, dir);
    const cli = startCli(["--config", file]);
    await cli.listening(1);

    const changed = yaml(port, plugins("bonjour", "  - use: ./greeter.mjs\n"));
    writeFileSync(file, changed);
    cli.process.kill("SIGHUP");
    await cli.waitFor(/^reconfigured \{"greeting":"bonjour"\}$/);
    const warn = await cli.waitFor(/"msg":"reload\.restart-needed"/);
    const notApplied = (JSON.parse(warn.input!) as { notApplied: string[] }).notApplied;
    expect(notApplied).to.deep.equal([
      "plugins added (./greeter.mjs)",
      "./fixed.mjs options (the plugin cannot reconfigure)",
    ]);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });
});
