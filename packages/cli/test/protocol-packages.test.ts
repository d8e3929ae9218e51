import { expect } from "chai";
import { once } from "node:events";
import { mkdirSync, symlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanup, runCli, startBackend, startCli, tmpFile } from "./helpers.js";

/** examples/protocol-banner: a third-party protocol package (registers "banner" in apply) */
const BANNER_PACKAGE = fileURLToPath(new URL("../../../examples/protocol-banner", import.meta.url));

/** A config file in a fresh directory whose node_modules has the banner package, as `npm install` would. */
function configWithBannerInstalled(name: string, content: string): string {
  const file = tmpFile(name, content);
  mkdirSync(join(dirname(file), "node_modules"));
  symlinkSync(BANNER_PACKAGE, join(dirname(file), "node_modules", "proxy-protocol-banner"), "dir");
  return file;
}

/** Connects and resolves with the first line the proxy sends, and the socket. */
async function firstLine(port: number): Promise<{ line: string; socket: Socket }> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.setEncoding("utf8");
  let got = "";
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner line, got ${JSON.stringify(got)}`)), 5000);
    socket.on("data", function onData(d: string) {
      got += d;
      const end = got.indexOf("\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      socket.off("data", onData);
      resolve(got.slice(0, end));
    });
  });
  return { line, socket };
}

async function ask(socket: Socket, text: string): Promise<string> {
  const answer = once(socket, "data").then(([d]) => String(d));
  socket.write(text);
  return answer;
}

const bannerConfig = (backend: number, protocol = "banner", greetOptions = '{ text: "hello from greet" }') => `listeners:
  - { name: greet, protocol: ${protocol}, host: 127.0.0.1, port: 0, options: ${greetOptions} }
  - { name: plain, protocol: banner, host: 127.0.0.1, port: 0 }
  - { name: raw, protocol: tcp, host: 127.0.0.1, port: 0 }
routes:
  - { name: echo, targets: ["127.0.0.1:${backend}"] }
plugins:
  - use: proxy-protocol-banner
    options: { text: "default banner" }
`;

describe("third-party protocols from config files (examples/protocol-banner)", () => {
  afterEach(cleanup);

  it("runs listeners of a protocol that a package named in plugins registers", async () => {
    const backend = await startBackend("b");
    const file = configWithBannerInstalled("switchyard.yaml", bannerConfig(backend));
    const check = await runCli(["check", file]);
    expect(check.stderr).to.equal("");
    expect(check.stdout).to.equal("ok\n");

    const cli = startCli(["--config", file]);
    const ports = await cli.listening(3);
    expect(cli.stdout()).to.match(/^listening greet banner 127\.0\.0\.1:\d+$/m);
    // the listener's own banner, then the route's backend behind it
    const greet = await firstLine(ports.greet!);
    expect(greet.line).to.equal("hello from greet");
    expect(await ask(greet.socket, "ping")).to.equal("b:ping");
    // no listener option: the plugin's default
    const plain = await firstLine(ports.plain!);
    expect(plain.line).to.equal("default banner");
    expect(await ask(plain.socket, "pong")).to.equal("b:pong");
    for (const s of [greet.socket, plain.socket]) s.end();
    await cli.waitFor(/"msg":"connection\.close".*"listener":"plain"/);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout()).to.match(/"msg":"connection\.close".*"listener":"greet".*"protocol":"banner"/);
  });

  it("checks listener protocols and options against what the packages register, with did-you-mean", async () => {
    const backend = await startBackend("b");
    const file = configWithBannerInstalled("switchyard.yaml", bannerConfig(backend, "baner", '{ txt: "x" }'));
    for (const mode of ["check", "--config"]) {
      const res = await runCli([mode, file]);
      expect(res.code, res.stderr).to.equal(2);
      expect(res.stderr.trim().split("\n").slice(1)).to.deep.equal([
        'listeners[0].protocol: unknown protocol "baner" (did you mean "banner"?): known are "banner", "http", "mysql", "postgres", "smtp", "tcp", and those a package in plugins registers',
      ]);
    }
    // the options of a listener of that protocol are the package's to check
    const typo = configWithBannerInstalled("typo.yaml", bannerConfig(backend, "banner", '{ txt: "x" }'));
    const res = await runCli(["check", typo]);
    expect(res.code).to.equal(2);
    expect(res.stderr.trim().split("\n").slice(1)).to.deep.equal(['listeners[0].options: unknown option "txt" (did you mean "text"?)']);
  });

  it("does not know the protocol without the package in plugins", async () => {
    const backend = await startBackend("b");
    const file = configWithBannerInstalled("switchyard.yaml", bannerConfig(backend).replace(/plugins:[\s\S]*/, ""));
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.include('listeners[0].protocol: unknown protocol "banner": known are "http", "mysql", "postgres", "smtp", "tcp"');
  });
});
