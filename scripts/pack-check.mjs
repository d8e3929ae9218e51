// Packs every public package with `pnpm pack` (which rewrites workspace: ranges), installs the
// tarballs with npm into a temporary project outside the workspace, and runs a composition
// from them (scripts/pack-fixture/compose.mjs) plus the installed `switchyard check`.
// Proves that per-package npm installs work, not only workspace links.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "switchyard-pack-"));
const tarballs = join(work, "tarballs");
const app = join(work, "app");
const keep = process.argv.includes("--keep");

function publicPackages() {
  const out = [];
  for (const group of ["packages", "examples"]) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base)) {
      const pj = join(base, name, "package.json");
      if (!existsSync(pj)) continue;
      const manifest = JSON.parse(readFileSync(pj, "utf8"));
      if (manifest.private) continue;
      out.push({ dir: join(base, name), name: manifest.name });
    }
  }
  return out;
}

try {
  const pkgs = publicPackages();
  const deps = {};
  for (const p of pkgs) {
    const out = execFileSync("pnpm", ["pack", "--pack-destination", tarballs], { cwd: p.dir, encoding: "utf8" });
    const file = out.trim().split("\n").pop().trim();
    deps[p.name] = `file:${file}`;
    console.log(`packed ${p.name} -> ${file.split("/").pop()}`);
  }
  cpSync(join(root, "scripts/pack-fixture"), app, { recursive: true });
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "pack-check-app", private: true, type: "module", dependencies: deps }, null, 2),
  );
  const install = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: app,
    stdio: "inherit",
    env: { ...process.env, npm_config_nodedir: "" },
  });
  if (install.status !== 0) throw new Error("npm install of the tarballs failed");
  const run = spawnSync(process.execPath, ["compose.mjs"], { cwd: app, stdio: "inherit", timeout: 60_000 });
  if (run.status !== 0) throw new Error(`composition from the tarballs failed (exit ${run.status})`);
  const check = spawnSync(join(app, "node_modules/.bin/switchyard"), ["check", "switchyard.json"], {
    cwd: app,
    encoding: "utf8",
    timeout: 30_000,
  });
  process.stdout.write(check.stdout);
  process.stderr.write(check.stderr);
  if (check.status !== 0) throw new Error(`installed switchyard check failed (exit ${check.status})`);
  console.log(`pack-check ok: ${pkgs.length} packages installed from tarballs`);
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}
