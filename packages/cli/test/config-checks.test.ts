import { expect } from "chai";
import { generateKeyPairSync } from "node:crypto";
import { dirname } from "node:path";
import { createTestCa } from "@switchyard/test-utils";
import { cleanup, runCli, tmpFile } from "./helpers.js";

/** The problem lines printed on stderr (after the header line). */
function problems(stderr: string): string[] {
  const lines = stderr.trim().split("\n");
  expect(lines[0]).to.match(/^switchyard: invalid config .* \(\d+ problems?\):$/);
  return lines.slice(1);
}

/** Runs `check` and `--config` on `file`: both exit 2 with exactly `expected` (a RegExp matches a line). */
async function refusedByBoth(file: string, expected: Array<string | RegExp>): Promise<void> {
  for (const mode of ["check", "--config"]) {
    const res = await runCli([mode, file]);
    expect(res.code, `${mode}: ${res.stderr}`).to.equal(2);
    expect(res.stdout).to.not.match(/listening/);
    const lines = problems(res.stderr);
    expect(lines, `${mode}:\n${res.stderr}`).to.have.length(expected.length);
    expected.forEach((e, i) => (typeof e === "string" ? expect(lines[i], mode).to.equal(e) : expect(lines[i], mode).to.match(e)));
  }
}

const KNOWN = 'known are "http", "mysql", "postgres", "smtp", "tcp", and those a package in plugins registers';

describe("config checks: listeners", () => {
  afterEach(cleanup);

  it("rejects protocol names inherited from Object.prototype (toString, constructor, __proto__, hasOwnProperty)", async () => {
    const names = ["toString", "constructor", "__proto__", "hasOwnProperty"];
    const file = tmpFile(
      "proto.json",
      JSON.stringify({ listeners: names.map((protocol, i) => ({ name: `l${i}`, protocol, host: "127.0.0.1", port: 0 })) }),
    );
    await refusedByBoth(file, names.map((name, i) => `listeners[${i}].protocol: unknown protocol "${name}": ${KNOWN}`));
  });

  it("reports `sni: ~` (null) as a problem instead of crashing", async () => {
    const leaf = createTestCa().issue({ commonName: "localhost" });
    const file = tmpFile(
      "sni.yaml",
      "listeners:\n  - { name: s, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./leaf.crt, key: ./leaf.key, sni: ~ } }\n",
    );
    tmpFile("leaf.crt", leaf.cert, dirname(file));
    tmpFile("leaf.key", leaf.key, dirname(file));
    await refusedByBoth(file, ["listeners[0].tls.sni: must be an object"]);
  });

  it("names listeners by their index in the file when an earlier entry is not an object", async () => {
    const file = tmpFile(
      "idx.yaml",
      `listeners:
  - "not an object"
  - { name: mail, protocol: ftp, host: 127.0.0.1, port: 0 }
  - { name: s, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./missing.crt, key: ./missing.key } }
`,
    );
    const dir = dirname(file);
    await refusedByBoth(file, [
      "listeners[0]: must be an object",
      `listeners[1].protocol: unknown protocol "ftp": ${KNOWN}`,
      `listeners[2].tls.cert: cannot read ${dir}/missing.crt: ENOENT`,
      `listeners[2].tls.key: cannot read ${dir}/missing.key: ENOENT`,
    ]);
  });

  it("checks every SNI certificate/key pair, as it checks the main one", async () => {
    const ca = createTestCa();
    const a = ca.issue({ commonName: "a.test", altNames: ["a.test"] });
    const b = ca.issue({ commonName: "b.test", altNames: ["b.test"] });
    const yaml = (sni: string) =>
      `listeners:\n  - { name: s, protocol: tcp, host: 127.0.0.1, port: 0, tls: { cert: ./a.crt, key: ./a.key, sni: { ${sni} } } }\nroutes: [{ targets: ["127.0.0.1:1"] }]\n`;
    const good = tmpFile("good.yaml", yaml(`"b.test": { cert: ./b.crt, key: ./b.key }`));
    const dir = dirname(good);
    for (const [name, text] of [["a.crt", a.cert], ["a.key", a.key], ["b.crt", b.cert], ["b.key", b.key]] as const) tmpFile(name, text, dir);
    const ok = await runCli(["check", good]);
    expect(ok.stderr).to.equal("");
    expect(ok.code).to.equal(0);

    // the test CA gives every leaf the same key: another one does not match b.crt
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
    tmpFile("other.key", other.toString(), dir);
    const bad = tmpFile("bad.yaml", yaml(`"b.test": { cert: ./b.crt, key: ./other.key }, "*.c.test": { cert: ./c.crt, key: ./b.key }`), dir);
    await refusedByBoth(bad, [
      `listeners[0].tls.sni["*.c.test"].cert: cannot read ${dir}/c.crt: ENOENT`,
      /^listeners\[0\]\.tls\.sni\["b\.test"\]: invalid certificate or key: .*key values mismatch/,
    ]);
  });
});

describe("config checks: routes, protocols and plugins", () => {
  afterEach(cleanup);

  it("flags unknown fields in target objects and in their tls options", async () => {
    const file = tmpFile(
      "targets.yaml",
      `listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]
routes:
  - targets:
      - { host: 127.0.0.1, port: 1, weight: 5, tls: { rejectUnauthorised: false } }
      - { host: h, port: 2, scheme: http, meta: { a: 1 }, tls: { ca: x, servername: s, rejectUnauthorized: false, alpn: [h2], cert: c, key: k } }
      - { host: h, port: 3, tls: true }
`,
    );
    await refusedByBoth(file, [
      'routes[0].targets[0].tls.rejectUnauthorised: unknown field (did you mean "rejectUnauthorized"?)',
      "routes[0].targets[0].weight: unknown field",
    ]);
  });

  it("checks the protocols section of a protocol no listener uses (when its package is installed)", async () => {
    const file = tmpFile(
      "protocols.yaml",
      "listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]\nprotocols: { http: { bogusHttp: 2 }, postgres: { anything: 1 } }\n",
    );
    await refusedByBoth(file, ['protocols.http: HttpProtocol: unknown option "bogusHttp"']);
    const fine = tmpFile("fine.yaml", "listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]\nprotocols: { http: { headersTimeout: 5000 } }\n");
    const res = await runCli(["check", fine]);
    expect(res.stderr).to.equal("");
    expect(res.code).to.equal(0);
  });

  it("knows the match keys a plugin registers (registerMatchKey), and no others", async () => {
    const yaml = (key: string) => `listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]
plugins: [{ use: ./tenant.mjs }]
routes:
  - { listener: t, match: { ${key}: "acme-*" }, targets: ["127.0.0.1:1"] }
`;
    const good = tmpFile("tenant.yaml", yaml("tenant"));
    tmpFile("tenant.mjs", `export default class TenantKey { name = "tenant-key"; apply(proxy) { proxy.registerMatchKey("tenant", "glob"); } }\n`, dirname(good));
    const ok = await runCli(["check", good]);
    expect(ok.stderr).to.equal("");
    expect(ok.code).to.equal(0);

    const bad = tmpFile("tenant.yaml", yaml("tenantt"));
    tmpFile("tenant.mjs", `export default class TenantKey { name = "tenant-key"; apply(proxy) { proxy.registerMatchKey("tenant", "glob"); } }\n`, dirname(bad));
    await refusedByBoth(bad, [
      `routes[0].match.tenantt: unknown match key "tenantt" (did you mean "tenant"?): known are "clientIp", "clientSan", "clientSubject", "host", "method", "path", "sni", "tenant" (core's, and those the listeners' protocols and the plugins register)`,
    ]);
  });

  it("reports a plugin whose apply throws, as the running proxy would meet it", async () => {
    const file = tmpFile(
      "apply.yaml",
      "listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]\nplugins: [{ use: ./ok.mjs }, { use: ./boom.mjs }]\n",
    );
    tmpFile("ok.mjs", `export default class OkPlugin { name = "ok"; apply() {} }\n`, dirname(file));
    tmpFile("boom.mjs", `export default class BoomPlugin { name = "boom"; apply() { throw new Error("no config for boom"); } }\n`, dirname(file));
    await refusedByBoth(file, ['plugins[1]: plugin "boom" failed in hook apply: no config for boom']);
  });

  it("resolves a relative file: URL plugin from the config file's directory", async () => {
    const file = tmpFile(
      "cfg.yaml",
      `listeners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]
plugins:
  - { use: "file:strict.mjs", options: { n: 1 } }
  - { use: "file:./strict.mjs", options: { n: -1 } }
  - { use: "file:missing.mjs" }
`,
    );
    const dir = dirname(file);
    tmpFile("strict.mjs", `export default class StrictPlugin { constructor(o) { if (o.n < 0) throw new Error("n must be >= 0"); } name = "s"; apply() {} }\n`, dir);
    const res = await runCli(["check", file]);
    expect(res.code).to.equal(2);
    expect(problems(res.stderr)).to.deep.equal([
      "plugins[1].options: n must be >= 0",
      `plugins[2].use: cannot resolve "file:missing.mjs": no such file ${dir}/missing.mjs`,
    ]);
  });
});

describe("config checks: files", () => {
  afterEach(cleanup);

  it("prints the whole YAML parse error: the message, the offending line and a caret under the column", async () => {
    const file = tmpFile("broken.yaml", "listeners:\n  - name: a\nprotocol: tcp\n   port: 1\n");
    for (const mode of ["check", "--config"]) {
      const res = await runCli([mode, file]);
      expect(res.code).to.equal(2);
      expect(problems(res.stderr)).to.deep.equal([
        `${file}: invalid YAML: Nested mappings are not allowed in compact mappings at line 3, column 11:`,
        "  protocol: tcp",
        "            ^",
      ]);
    }
  });

  it("accepts JSON and YAML configs that start with a UTF-8 byte-order mark", async () => {
    const json = tmpFile("bom.json", `\uFEFF${JSON.stringify({ listeners: [{ name: "t", protocol: "tcp", host: "127.0.0.1", port: 0 }] })}`);
    const yaml = tmpFile("bom.yaml", "\uFEFFlisteners: [{ name: t, protocol: tcp, host: 127.0.0.1, port: 0 }]\n");
    for (const file of [json, yaml]) {
      const res = await runCli(["check", file]);
      expect(res.stderr, file).to.equal("");
      expect(res.stdout).to.equal("ok\n");
      expect(res.code).to.equal(0);
    }
  });

  it("reports a missing import inside an ES module config as a load failure, not as a missing config", async () => {
    const file = tmpFile(
      "cfg.mjs",
      `import "./nonexistent-helper.mjs";\nexport default { listeners: [{ name: "t", protocol: "tcp", host: "127.0.0.1", port: 0 }] };\n`,
    );
    const dir = dirname(file);
    for (const mode of ["check", "--config"]) {
      const res = await runCli([mode, file]);
      expect(res.code).to.equal(2);
      expect(problems(res.stderr)).to.deep.equal([
        `${file}: failed to load: Cannot find module '${dir}/nonexistent-helper.mjs' imported from ${file}`,
      ]);
    }
    const missing = await runCli(["check", `${dir}/missing.mjs`]);
    expect(missing.code).to.equal(2);
    expect(problems(missing.stderr)).to.deep.equal([`${dir}/missing.mjs: cannot read: no such file`]);
  });
});
