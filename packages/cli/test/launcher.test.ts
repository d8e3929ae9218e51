import { expect } from "chai";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BIN, cleanup, startCli, tmpFile } from "./helpers.js";

const TUNING = "glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=4194304";

/**
 * Runs `switchyard check` through the launcher on an ES-module config that records, from inside
 * the node process, its pid and GLIBC_TUNABLES as node sees them (glibc rewrites the variable in
 * /proc/<pid>/environ while parsing it, so that file is no witness).
 */
async function tunablesSeen(env: NodeJS.ProcessEnv, bin?: string): Promise<string | undefined> {
  const cfg = tmpFile(
    "cfg.mjs",
    `import { writeFileSync } from "node:fs";
writeFileSync(new URL("./seen.json", import.meta.url), JSON.stringify({ pid: process.pid, tunables: process.env.GLIBC_TUNABLES }));
export default { listeners: [{ name: "edge", protocol: "tcp", host: "127.0.0.1", port: 0 }], routes: [] };
`,
  );
  const cli = startCli(["check", cfg], bin === undefined ? { env } : { env, bin });
  expect(await cli.exited, cli.stderr()).to.equal(0);
  expect(cli.stdout()).to.equal("ok\n");
  const seen = JSON.parse(readFileSync(join(dirname(cfg), "seen.json"), "utf8")) as { pid: number; tunables?: string };
  expect(seen.pid, "the launcher execs node (no extra process)").to.equal(cli.process.pid);
  return seen.tunables;
}

function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

describe("the switchyard launcher (bin/switchyard)", function () {
  this.timeout(20_000);
  afterEach(cleanup);
  before(function () {
    if (process.platform === "win32") this.skip(); // a sh script; Windows runs dist/bin.js with node
  });

  it("execs node with the malloc thresholds added to GLIBC_TUNABLES", async () => {
    expect(await tunablesSeen(envWithout("GLIBC_TUNABLES", "SWITCHYARD_MALLOC_TUNING"))).to.equal(TUNING);
  });

  it("keeps other tunables the environment sets, adding its own after them", async () => {
    const env = { ...envWithout("SWITCHYARD_MALLOC_TUNING"), GLIBC_TUNABLES: "glibc.malloc.arena_max=2" };
    expect(await tunablesSeen(env)).to.equal(`glibc.malloc.arena_max=2:${TUNING}`);
  });

  it("leaves GLIBC_TUNABLES alone when it already sets a malloc threshold", async () => {
    for (const own of ["glibc.malloc.trim_threshold=1048576", "glibc.malloc.mmap_threshold=262144"]) {
      const env = { ...envWithout("SWITCHYARD_MALLOC_TUNING"), GLIBC_TUNABLES: own };
      expect(await tunablesSeen(env)).to.equal(own);
    }
  });

  it("adds nothing with SWITCHYARD_MALLOC_TUNING=off", async () => {
    expect(await tunablesSeen({ ...envWithout("GLIBC_TUNABLES"), SWITCHYARD_MALLOC_TUNING: "off" })).to.equal(undefined);
  });

  it("says to build first when dist/bin.js is missing (a checkout never built)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-unbuilt-"));
    try {
      mkdirSync(join(dir, "bin"));
      copyFileSync(BIN, join(dir, "bin", "switchyard"));
      const cli = startCli(["--version"], { bin: join(dir, "bin", "switchyard") });
      expect(await cli.exited).to.equal(1);
      expect(cli.stderr()).to.equal(`switchyard: ${dir}/bin/../dist/bin.js does not exist: run \`pnpm build\` in the Switchyard checkout first\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("finds dist/bin.js when run through a chain of symlinks (npm's global bin)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-bin-"));
    try {
      symlinkSync(BIN, join(dir, "real-link"));
      symlinkSync("real-link", join(dir, "switchyard")); // relative link to a link
      expect(await tunablesSeen(envWithout("GLIBC_TUNABLES", "SWITCHYARD_MALLOC_TUNING"), join(dir, "switchyard"))).to.equal(TUNING);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
