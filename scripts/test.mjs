// Builds every project (tsc -b) and runs all package test suites in one mocha process.
// The reporter prints mocha's spec output and a closing "N passed, N failed" line.
import { spawnSync } from "node:child_process";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const build = spawnSync("pnpm", ["exec", "tsc", "-b"], { cwd: root, stdio: "inherit" });
if (build.status !== 0) {
  console.log("0 passed, 1 failed");
  process.exit(build.status ?? 1);
}
// filters: package directory names or paths ("core", "packages/core", "./packages/core/")
const only = process.argv.slice(2).map((a) => a.replace(/\/+$/, "").split("/").pop());
const dirs = [];
for (const group of ["packages", "examples"]) {
  const base = join(root, group);
  if (!existsSync(base)) continue;
  for (const name of readdirSync(base)) {
    if (only.length && !only.includes(name)) continue;
    const d = join(base, name, "dist-test");
    if (existsSync(d)) dirs.push(`${d}/**/*.test.js`);
  }
}
// no --exit: the run ends on its own once every test closed what it opened; a handle left open
// fails the run from the root hook in open-handles.cjs, which names it
const mocha = spawnSync(
  "pnpm",
  [
    "exec",
    "mocha",
    "--require",
    join(root, "scripts/open-handles.cjs"),
    "--reporter",
    join(root, "scripts/summary-reporter.cjs"),
    "--timeout",
    "20000",
    ...dirs,
  ],
  { cwd: root, stdio: "inherit" },
);
process.exit(mocha.status ?? 1);
