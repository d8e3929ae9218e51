import { expect } from "chai";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cleanup, runCli } from "./helpers.js";

const dir = fileURLToPath(new URL("../../../examples/config/", import.meta.url));
const files = readdirSync(dir).filter((f) => /^switchyard\.(json|ya?ml|mjs)$/.test(f));

describe("examples/config", () => {
  afterEach(cleanup);

  it("has an example in each format", () => {
    expect(files.map((f) => f.split(".")[1]).sort()).to.deep.equal(["json", "mjs", "yaml"]);
  });

  it("examples/protocol-banner/switchyard.yaml passes switchyard check (its package resolved from its directory)", async () => {
    const res = await runCli(["check", fileURLToPath(new URL("../../../examples/protocol-banner/switchyard.yaml", import.meta.url))]);
    expect(res.stderr).to.equal("");
    expect(res.stdout).to.equal("ok\n");
    expect(res.code).to.equal(0);
  });

  for (const file of files) {
    it(`${file} passes switchyard check`, async () => {
      const res = await runCli(["check", dir + file]);
      expect(res.stderr).to.equal("");
      expect(res.stdout).to.equal("ok\n");
      expect(res.code).to.equal(0);
    });
  }
});
