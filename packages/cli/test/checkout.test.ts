import { expect } from "chai";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Runs `pnpm <args>` in `cwd` to completion. */
function pnpm(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("pnpm", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject).on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("running the command from a checkout (pnpm switchyard)", function () {
  this.timeout(90_000);

  it("checks an example config from the repository root", async () => {
    const res = await pnpm(["switchyard", "check", "--config", "examples/config/switchyard.yaml"], ROOT);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout.trim().split("\n").pop()).to.equal("ok");
  });

  it("reads config paths relative to the directory it was started in", async () => {
    const res = await pnpm(["switchyard", "check", "switchyard.json"], `${ROOT}examples/config`);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout.trim().split("\n").pop()).to.equal("ok");
    const bad = await pnpm(["switchyard", "check", "nope.json"], `${ROOT}examples/config`);
    expect(bad.code).to.not.equal(0);
    expect(bad.stderr).to.include("nope.json: cannot read: ");
  });
});
