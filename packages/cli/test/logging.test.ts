import { expect } from "chai";
import { once } from "node:events";
import { createServer, request, Agent, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { dirname } from "node:path";
import { writeFileSync } from "node:fs";
import { prepareConfig, prepareFile, serve, type Running } from "@switchyard/cli";
import { cleanup, startCli, tmpFile } from "./helpers.js";

const servers = new Set<Server>();

/** An HTTP backend: 200 with the path for /ok*, 404 otherwise. */
async function httpBackend(): Promise<number> {
  const server = createServer((req, res) => {
    res.statusCode = req.url?.startsWith("/ok") ? 200 : 404;
    res.end(`${req.method} ${req.url}\n`);
  });
  servers.add(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** GETs `paths` one after the other through one keep-alive connection; returns the statuses and how many sockets were used. */
async function getAll(port: number, paths: string[]): Promise<{ statuses: number[]; sockets: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const seen = new Set<unknown>();
  const statuses: number[] = [];
  try {
    for (const path of paths) {
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          const req = request({ host: "127.0.0.1", port, path, agent, timeout: 5000 }, (res) => {
            seen.add(req.socket);
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          });
          req.on("error", reject).on("timeout", () => req.destroy(new Error(`timeout on ${path}`)));
          req.end();
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return { statuses, sockets: seen.size };
}

const config = (backend: number, level: string) => `log: { level: ${level} }
listeners:
  - { name: web, protocol: http, host: 127.0.0.1, port: 0 }
routes:
  - { name: app, listener: web, targets: ["http://127.0.0.1:${backend}"] }
`;

const linesOf = (out: string, msg: string) =>
  out
    .split("\n")
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** cleanup() and the HTTP backends */
async function closeAll(): Promise<void> {
  await cleanup();
  for (const s of servers) s.closeAllConnections();
  await Promise.all([...servers].map((s) => new Promise((r) => s.close(r))));
  servers.clear();
}

describe("the command's log: access log lines (http.request)", () => {
  afterEach(closeAll);

  it("logs one http.request line per request, two on one keep-alive connection", async () => {
    const backend = await httpBackend();
    const cli = startCli(["--config", tmpFile("switchyard.yaml", config(backend, "info"))]);
    const { web } = await cli.listening(1);
    const { statuses, sockets } = await getAll(web!, ["/ok/first?q=1", "/missing"]);
    expect(statuses).to.deep.equal([200, 404]);
    expect(sockets).to.equal(1);
    await cli.waitFor(/"msg":"http\.request".*"path":"\/missing"/);
    const requests = linesOf(cli.stdout(), "http.request");
    expect(requests).to.have.length(2);
    expect(requests.map((r) => [r.method, r.path, r.status])).to.deep.equal([
      ["GET", "/ok/first", 200],
      ["GET", "/missing", 404],
    ]);
    for (const r of requests) {
      expect(r).to.include({ level: "info", listener: "web", protocol: "http", route: "app", clientIp: "127.0.0.1", attempts: 1, error: null });
      // "host:port" (the record's contract), whether or not a scheme is written before it
      expect(r.target).to.match(new RegExp(`(^|//)127\\.0\\.0\\.1:${backend}$`));
      expect(r.durationMs).to.be.a("number");
      expect(r.bytesOut as number).to.be.greaterThan(0);
    }
    // both on the one connection the client kept open
    expect(requests[0]!.connectionId).to.equal(requests[1]!.connectionId);
    expect(requests[0]!.id).to.not.equal(requests[1]!.id);
    expect(linesOf(cli.stdout(), "connection.open")).to.have.length(1);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("logs no request or connection lines at level warn", async () => {
    const backend = await httpBackend();
    const cli = startCli(["--config", tmpFile("switchyard.yaml", config(backend, "warn"))]);
    const { web } = await cli.listening(1);
    expect((await getAll(web!, ["/ok/a", "/ok/b"])).statuses).to.deep.equal([200, 200]);
    cli.process.kill("SIGTERM");
    // exit writes what the logger buffered: nothing was held back
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout()).to.not.match(/"msg":"(http\.request|connection\.open|connection\.close)"/);
  });

  it("does not listen for requestComplete when the level excludes info, and does when it includes it", async () => {
    const backend = await httpBackend();
    const counts: Record<string, number> = {};
    for (const level of ["warn", "info"]) {
      const result = await prepareConfig(
        {
          log: { level },
          listeners: [{ name: "web", protocol: "http", host: "127.0.0.1", port: 0 }],
          routes: [{ name: "app", listener: "web", targets: [`http://127.0.0.1:${backend}`] }],
        },
        undefined,
      );
      if (!result.ok) throw new Error(result.problems.join("\n"));
      const lines: string[] = [];
      const running = (await serve(result.prepared, { stdout: (l) => lines.push(l) })) as Running;
      counts[level] = running.proxy.events.listenerCount("requestComplete");
      // what a signal does: close, then the handlers serve installed are removed again
      process.emit("SIGTERM", "SIGTERM");
      expect(await running.done).to.equal(0);
    }
    expect(counts).to.deep.equal({ warn: 0, info: 1 });
  });

  it("starts and stops listening for requests when a reload changes the level", async () => {
    const backend = await httpBackend();
    const file = tmpFile("switchyard.yaml", config(backend, "warn"));
    const result = await prepareFile(file);
    if (!result.ok) throw new Error(result.problems.join("\n"));
    const running = (await serve(result.prepared, { file, stdout: () => {} })) as Running;
    const count = () => running.proxy.events.listenerCount("requestComplete");
    const reloadTo = async (level: string, want: number) => {
      writeFileSync(file, config(backend, level));
      process.emit("SIGHUP", "SIGHUP");
      const deadline = Date.now() + 10_000;
      while (count() !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return count();
    };
    try {
      expect(count()).to.equal(0);
      expect(await reloadTo("info", 1)).to.equal(1);
      expect(await reloadTo("error", 0)).to.equal(0);
    } finally {
      process.emit("SIGTERM", "SIGTERM");
      expect(await running.done).to.equal(0);
    }
  });
});

describe("the command's log: plugins", () => {
  afterEach(closeAll);

  it("gives a plugin a child logger whose lines name it, following the configured level", async () => {
    const file = tmpFile(
      "switchyard.yaml",
      `listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]
plugins: [{ use: ./chatty.mjs }]
`,
    );
    tmpFile(
      "chatty.mjs",
      `export default class ChattyPlugin {
  name = "ChattyPlugin";
  apply(proxy) {
    const log = proxy.logger.child({ plugin: this.name });
    log.debug("chatty.debug", { n: 0 });
    log.info("chatty.ready", { n: 1 });
  }
}
`,
      dirname(file),
    );
    const cli = startCli(["--config", file]);
    const line = await cli.waitFor(/"msg":"chatty\.ready"/);
    expect(JSON.parse(line.input!)).to.include({ level: "info", plugin: "ChattyPlugin", n: 1 });
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout()).to.not.include("chatty.debug");
  });

  it("keeps a plugin's child logger on the level a reload sets", async () => {
    const backend = await httpBackend();
    const yaml = (level: string) => `log: { level: ${level} }
listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]
routes: [{ targets: ["127.0.0.1:${backend}"] }]
plugins: [{ use: ./closes.mjs }]
`;
    const file = tmpFile("switchyard.yaml", yaml("warn"));
    tmpFile(
      "closes.mjs",
      `export default class ClosesPlugin {
  name = "ClosesPlugin";
  apply(proxy) {
    const log = proxy.logger.child({ plugin: this.name });
    proxy.hooks.onClose.tap({ name: this.name, stage: 1000 }, (conn) => log.info("closes.seen", { id: conn.id }));
  }
}
`,
      dirname(file),
    );
    const cli = startCli(["--config", file]);
    const { t } = await cli.listening(1);
    const connectAndClose = async () => {
      const s = connect(t!, "127.0.0.1");
      s.on("error", () => {});
      await once(s, "connect");
      s.end();
      await once(s, "close");
    };
    await connectAndClose();
    writeFileSync(file, yaml("info"));
    cli.process.kill("SIGHUP");
    await cli.waitFor(/"msg":"reload\.ok"/); // an info line: the level changed
    expect(cli.stdout()).to.not.include("closes.seen");
    await connectAndClose();
    const line = await cli.waitFor(/"msg":"closes\.seen"/);
    expect(JSON.parse(line.input!)).to.include({ level: "info", plugin: "ClosesPlugin" });
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
    expect(cli.stdout().split("\n").filter((l) => l.includes("closes.seen"))).to.have.length(1);
  });
});
