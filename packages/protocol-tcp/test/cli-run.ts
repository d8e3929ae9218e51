import { spawn } from "node:child_process";

/**
 * Runs a command-line client (psql, mariadb) with `stdin`; resolves with stdout on exit code 0,
 * rejects with stderr otherwise (or with `{ code, stderr }` when `allowFailure`).
 */
export function runCli(command: string, args: string[], stdin?: Buffer): Promise<Buffer> {
  return runCliResult(command, args, stdin).then((r) => {
    if (r.code !== 0) throw new Error(`${command} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  });
}

export function runCliResult(command: string, args: string[], stdin?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, PGCONNECT_TIMEOUT: "10" } });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.on("error", () => {});
    child.stdin.end(stdin);
  });
}
