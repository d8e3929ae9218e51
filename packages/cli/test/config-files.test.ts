import { expect } from "chai";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import { cleanup, CLI_INDEX_URL, client, runCli, startBackend, startCli, tmpFile } from "./helpers.js";

const yamlConfig = (port: number) => `# a YAML config
listeners:
  - name: edge
    protocol: tcp
    host: 127.0.0.1
    port: 0
routes:
  - name: to-backend
    listener: edge
    targets: ["127.0.0.1:${port}"]
`;

const jsonConfig = (port: number) =>
  JSON.stringify({
    listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }],
    routes: [{ name: "to-backend", listener: "edge", targets: [`127.0.0.1:${port}`] }],
  });

// "@switchyard/cli" does not resolve from os.tmpdir(): the command's own copy is used
const esmConfig = (port: number) => `import { defineConfig } from "@switchyard/cli";
export default defineConfig({
  listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }],
  routes: [{ name: "to-backend", listener: "edge", targets: ["127.0.0.1:${port}"] }],
});
`;

const formats: Array<[string, (port: number) => string]> = [
  ["switchyard.json", jsonConfig],
  ["switchyard.yaml", yamlConfig],
  ["switchyard.mjs", esmConfig],
];

describe("switchyard --config (valid files)", () => {
  afterEach(cleanup);

  for (const [name, make] of formats) {
    it(`checks and runs a ${name.split(".")[1]} config`, async () => {
      const backend = await startBackend("b1");
      const file = tmpFile(name, make(backend));
      const check = await runCli(["check", file]);
      expect(check.stderr).to.equal("");
      expect(check.stdout).to.equal("ok\n");
      expect(check.code).to.equal(0);

      const cli = startCli(["--config", file]);
      const ports = await cli.listening(1);
      expect(cli.stdout()).to.match(/^listening edge tcp 127\.0\.0\.1:\d+$/m);
      const c = await client(ports.edge!);
      expect(await c.ask("hello")).to.equal("b1:hello");
      c.socket.end();
      const close = await cli.waitFor(/"msg":"connection\.close"/);
      const line = JSON.parse(close.input!) as Record<string, unknown>;
      expect(line).to.include({ level: "info", listener: "edge", route: "to-backend", bytesIn: 5, bytesOut: 8 });
      expect(line.reason).to.be.a("string");
      expect(line.durationMs).to.be.a("number");
      expect(cli.stdout()).to.match(/"msg":"connection\.open".*"listener":"edge"/);
      cli.process.kill("SIGTERM");
      expect(await cli.exited).to.equal(0);
    });
  }

  it("accepts an ES module whose default export is a function, importing the CLI by URL", async () => {
    const backend = await startBackend("fn");
    const file = tmpFile(
      "cfg.mjs",
      `import { defineConfig } from ${JSON.stringify(CLI_INDEX_URL)};\nexport default async () => defineConfig(${jsonConfig(backend)});\n`,
    );
    const res = await runCli(["check", file]);
    expect(res.stdout).to.equal("ok\n");
    expect(res.code).to.equal(0);
  });
});

/** The problem lines printed on stderr (after the header line). */
function problems(stderr: string): string[] {
  const lines = stderr.trim().split("\n");
  expect(lines[0]).to.match(/^switchyard: invalid config .* \(\d+ problems?\):$/);
  return lines.slice(1);
}

const INVALID = {
  listeners: [
    { name: "a", protocol: "tcp", port: 70000, prot: "x" },
    { name: "a", protocol: "tcp", host: "127.0.0.1", port: 0 },
  ],
  routes: [
    { name: "r0", listener: "a", targets: ["127.0.0.1:1"] },
    { name: "r1", listener: "x", targets: ["127.0.0.1:2"] },
    { name: "r2", listener: "a", targets: [] },
    { name: "r3", targets: ["nohost"], lb: "fastest" },
  ],
};

const EXPECTED = [
  "listeners[0].port: must be an integer 0-65535",
  'listeners[0].prot: unknown field (did you mean "port"?)',
  'listeners[1].name: duplicate listener name "a"',
  'routes[1].listener: no listener named "x"',
  "routes[2].targets: must be a non-empty array",
  'routes[3].lb: must be one of "round-robin", "least-connections", "random"',
];

function toYaml(): string {
  return `listeners:
  - { name: a, protocol: tcp, port: 70000, prot: x }
  - { name: a, protocol: tcp, host: 127.0.0.1, port: 0 }
routes:
  - { name: r0, listener: a, targets: ["127.0.0.1:1"] }
  - { name: r1, listener: x, targets: ["127.0.0.1:2"] }
  - { name: r2, listener: a, targets: [] }
  - { name: r3, targets: [nohost], lb: fastest }
`;
}

describe("switchyard --config (invalid files)", () => {
  afterEach(cleanup);

  const invalid: Array<[string, () => string]> = [
    ["bad.json", () => JSON.stringify(INVALID, null, 2)],
    ["bad.yml", toYaml],
    ["bad.mjs", () => `export default ${JSON.stringify(INVALID)};\n`],
  ];
  for (const [name, make] of invalid) {
    for (const mode of ["check", "--config"]) {
      it(`reports every problem with its field path (${name}, ${mode}) and exits 2`, async () => {
        const file = tmpFile(name, make());
        const res = await runCli(mode === "check" ? ["check", file] : ["--config", file]);
        expect(res.code).to.equal(2);
        expect(res.stdout).to.not.match(/listening/);
        const lines = problems(res.stderr);
        for (const e of EXPECTED) expect(lines).to.include(e);
        expect(lines.find((l) => l.startsWith("routes[3].targets[0]: "))).to.include('"nohost"');
        expect(lines).to.have.length(EXPECTED.length + 1);
      });
    }
  }

  it("names a protocol nobody provides, suggesting the closest known one", async () => {
    const file = tmpFile(
      "smtp.yaml",
      `listeners:
  - { name: mail, protocol: smtpx, port: 2525 }
  - { name: x, protocol: ftp, port: 21 }
  - { name: web, protocol: htp, port: 80 }
  - { name: db, protocol: postgres, port: 5432 }
routes:
  - { listener: mail, targets: ['127.0.0.1:25'] }
`,
    );
    const known = '"http", "mysql", "postgres", "smtp", "tcp", and those a package in plugins registers';
    for (const mode of ["check", "--config"]) {
      const res = await runCli([mode, file]);
      expect(res.code).to.equal(2);
      expect(problems(res.stderr)).to.deep.equal([
        `listeners[0].protocol: unknown protocol "smtpx" (did you mean "smtp"?): known are ${known}`,
        `listeners[1].protocol: unknown protocol "ftp": known are ${known}`,
        `listeners[2].protocol: unknown protocol "htp" (did you mean "http"?): known are ${known}`,
      ]);
    }
  });

  it("flags unknown top-level, match and plugin fields and bad types", async () => {
    const file = tmpFile(
      "types.json",
      JSON.stringify({
        listener: [],
        listeners: [{ name: "", protocol: "tcp", port: "80", maxConnections: 0, timeouts: { idle: -1, nap: 1 } }],
        routes: [{ targets: ["127.0.0.1:1"], match: { hots: "x", clientIp: ["10.0.0.0/8", "10.0.0.0/40"] }, priority: "high" }],
        plugins: [{ use: "" }, { uses: "x" }],
        log: { level: "inf" },
      }),
    );
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(problems(res.stderr)).to.deep.equal([
      'config.listener: unknown field (did you mean "listeners"?)',
      "listeners[0].maxConnections: must be a positive integer",
      "listeners[0].name: must be a non-empty string",
      "listeners[0].port: must be an integer 0-65535",
      "listeners[0].timeouts.idle: must be a non-negative integer (milliseconds)",
      "listeners[0].timeouts.nap: unknown field",
      'routes[0].match.clientIp[1]: "10.0.0.0/40": prefix length must be 0-32',
      `routes[0].match.hots: unknown match key "hots" (did you mean "host"?): known are "clientIp", "clientSan", "clientSubject", "host", "method", "path", "sni" (core's, and those the listeners' protocols and the plugins register)`,
      "routes[0].priority: must be a number",
      "plugins[0].use: must be a non-empty string",
      "plugins[1].use: must be a non-empty string",
      'plugins[1].uses: unknown field (did you mean "use"?)',
      'log.level: must be one of "debug", "info", "warn", "error", "silent" (did you mean "info"?)',
    ]);
  });

  it("checks the protocol and plugin options of listeners and routes before anything listens", async () => {
    const file = tmpFile(
      "options.yaml",
      `listeners:
  - { name: web, protocol: http, port: 0, options: { headerTimeout: 5 } }
  - { name: raw, protocol: tcp, port: 0, options: { idle: 5 } }
routes:
  - { name: a, listener: web, targets: ["http://127.0.0.1:1"], options: { maxBodySize: -1 } }
  - { name: b, listener: web, targets: ["http://127.0.0.1:1"], options: { retry: { retries: 1 } } }
  - { name: c, listener: web, targets: ["http://127.0.0.1:1"], options: { headers: { request: { set: { X-A: 1 } } } } }
  - { name: d, listener: raw, targets: ["127.0.0.1:1"], options: { stripPrefix: true } }
  - { name: e, listener: web, targets: ["http://127.0.0.1:1"], options: { stripPrefix: true, headers: { rewriteHost: true } } }
plugins: [{ use: "@switchyard/plugin-headers" }]
`,
    );
    for (const mode of ["check", "--config"]) {
      const res = await runCli([mode, file]);
      expect(res.code).to.equal(2);
      expect(res.stdout).to.not.match(/listening/);
      expect(problems(res.stderr)).to.deep.equal([
        'listeners[0].options: unknown option "headerTimeout" (did you mean "headersTimeout"?)',
        'listeners[1].options: unknown option "idle" (protocol "tcp" takes only tlsPassthrough)',
        "routes[0].options: maxBodySize must be a number >= 0",
        'routes[1].options: unknown option "retry" — no protocol or plugin on this route reads it',
        "routes[2].options.headers.request.set.X-A: header values must be strings without CR, LF or NUL",
        'routes[3].options: unknown option "stripPrefix" — no protocol or plugin on this route reads it',
      ]);
    }
  });

  it("names the protocols section for a bad protocol default", async () => {
    const file = tmpFile("defaults.yaml", "listeners: [{ name: web, protocol: http, port: 0 }]\nprotocols: { http: { headerTimeout: 5 } }\n");
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(problems(res.stderr)).to.deep.equal(['protocols.http: HttpProtocol: unknown option "headerTimeout" (did you mean "headersTimeout"?)']);
  });

  it("reports files that cannot be read or parsed", async () => {
    const json = tmpFile("broken.json", "{ listeners: ");
    const yaml = tmpFile("broken.yaml", "listeners:\n  - name: a\n   port: 1\n");
    const txt = tmpFile("cfg.toml", "x = 1");
    const missing = `${dirname(json)}/missing.json`;
    for (const [file, re] of [
      [json, /broken\.json: invalid JSON: /],
      [yaml, /broken\.yaml: invalid YAML: /],
      [txt, /unsupported config format/],
      [missing, /missing\.json: cannot read: /],
    ] as const) {
      const res = await runCli(["check", file]);
      expect(res.code, file).to.equal(2);
      expect(res.stderr).to.match(re);
    }
  });

  it("reports TLS files that cannot be read, relative to the config file", async () => {
    const file = tmpFile(
      "tls.yaml",
      "listeners:\n  - { name: s, protocol: tcp, port: 0, tls: { cert: ./nope.crt, key: ./nope.key } }\nroutes: [{ targets: ['127.0.0.1:1'] }]\n",
    );
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(problems(res.stderr)).to.deep.equal([
      `listeners[0].tls.cert: cannot read ${dirname(file)}/nope.crt: ENOENT`,
      `listeners[0].tls.key: cannot read ${dirname(file)}/nope.key: ENOENT`,
    ]);
  });
});

describe("plugins in config files", () => {
  afterEach(cleanup);

  const listenerYaml = "listeners: [{ name: a, protocol: tcp, host: 127.0.0.1, port: 0 }]\nroutes: [{ targets: ['127.0.0.1:1'] }]\n";

  it("loads a plugin from a path relative to the config file (default-exported class)", async () => {
    const file = tmpFile("cfg.yaml", `${listenerYaml}plugins:\n  - use: ./my-plugin.mjs\n    options: { greeting: hi }\n`);
    tmpFile(
      "my-plugin.mjs",
      `export default class Greeter { constructor(o) { if (o.greeting !== "hi") throw new Error("bad"); this.name = "Greeter"; } apply() {} }\n`,
      dirname(file),
    );
    const res = await runCli(["check", file]);
    expect(res.stderr).to.equal("");
    expect(res.code).to.equal(0);
  });

  it("picks the single exported *Plugin class, and loads packages by name", async () => {
    const file = tmpFile(
      "cfg.yaml",
      `${listenerYaml}plugins:\n  - use: ./named.mjs\n  - use: "@switchyard/plugin-headers"\n`,
    );
    tmpFile(
      "named.mjs",
      `export class Helper {}\nexport class AuditPlugin { name = "AuditPlugin"; apply() {} }\nexport const x = 1;\n`,
      dirname(file),
    );
    const res = await runCli(["check", file]);
    expect(res.stderr).to.equal("");
    expect(res.code).to.equal(0);
  });

  it("reports plugins that cannot be resolved, have no plugin class, or reject their options", async () => {
    const file = tmpFile(
      "cfg.yaml",
      `${listenerYaml}plugins:\n  - use: ./missing.mjs\n  - use: no-such-package-xyz\n  - use: ./none.mjs\n  - use: ./two.mjs\n  - use: ./strict.mjs\n    options: { n: -1 }\n`,
    );
    const dir = dirname(file);
    tmpFile("none.mjs", "export const x = 1;\n", dir);
    tmpFile("two.mjs", "export class APlugin { apply() {} }\nexport class BPlugin { apply() {} }\n", dir);
    tmpFile("strict.mjs", `export default class StrictPlugin { constructor(o) { if (o.n < 0) throw new Error("n must be >= 0"); } name = "s"; apply() {} }\n`, dir);
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(problems(res.stderr)).to.deep.equal([
      `plugins[0].use: cannot resolve "./missing.mjs": no such file ${dir}/missing.mjs`,
      `plugins[1].use: cannot resolve "no-such-package-xyz" from ${dir}`,
      'plugins[2].use: "./none.mjs" exports no plugin class (default-export a class, or export one class named *Plugin or *Protocol)',
      'plugins[3].use: "./two.mjs" exports several plugin classes (APlugin, BPlugin): default-export the one to use',
      "plugins[4].options: n must be >= 0",
    ]);
  });
});

describe("switchyard arguments", () => {
  afterEach(cleanup);

  it("prints --help and --version", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include("switchyard check <file>");
    const version = await runCli(["--version"]);
    expect(version.code).to.equal(0);
    expect(version.stdout).to.match(/^switchyard \d+\.\d+\.\d+\n$/);
  });

  it("exits 2 on usage errors", async () => {
    for (const args of [["--bogus"], ["check"], ["--config"], ["some.yaml"]]) {
      const res = await runCli(args);
      expect(res.code, args.join(" ")).to.equal(2);
      expect(res.stderr).to.match(/^switchyard: /);
    }
  });
});

describe("an http listener from a config file", () => {
  afterEach(cleanup);

  it("proxies HTTP through @switchyard/protocol-http with a plugin loaded by package name", async () => {
    const { createServer } = await import("node:http");
    const backend = createServer((req, res) => res.end(`seen xff=${req.headers["x-forwarded-for"]} ${req.url}`));
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
    try {
      const port = (backend.address() as AddressInfo).port;
      const file = tmpFile(
        "http.yaml",
        `listeners: [{ name: web, protocol: http, host: 127.0.0.1, port: 0 }]
routes: [{ name: app, listener: web, targets: ["http://127.0.0.1:${port}"] }]
plugins: [{ use: "@switchyard/plugin-headers", options: { xForwarded: true } }]
`,
      );
      const cli = startCli(["--config", file]);
      const { web } = await cli.listening(1);
      expect(cli.stdout()).to.match(/^listening web http 127\.0\.0\.1:\d+$/m);
      const res = await fetch(`http://127.0.0.1:${web}/x?y=1`);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.equal("seen xff=127.0.0.1 /x?y=1");
      cli.process.kill("SIGTERM");
      expect(await cli.exited).to.equal(0);
      expect(cli.stdout()).to.match(/"msg":"connection\.close".*"route":"app"/);
    } finally {
      backend.closeAllConnections();
      backend.close();
    }
  });
});
