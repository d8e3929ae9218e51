import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

const script = fileURLToPath(new URL("../../../scripts/pack-check.mjs", import.meta.url));

describe("packages installed from their tarballs", () => {
  it("pack, npm-install outside the workspace, and run a composition and `switchyard check`", async function () {
    this.timeout(240_000);
    const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code, out).to.equal(0);
    expect(out).to.match(/compose ok: http \+ tcp/);
    expect(out).to.match(/pack-check ok: \d+ packages/);
    for (const name of ["@switchyard/core", "@switchyard/protocol-http", "@switchyard/plugin-headers", "@switchyard/plugin-retry", "@switchyard/cli", "proxy-plugin-request-id"]) {
      expect(out).to.include(`packed ${name}`);
    }
  });
});
