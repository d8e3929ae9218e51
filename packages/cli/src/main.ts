/** The `switchyard` command: dispatches parsed arguments, returns the exit code. */
import { readFileSync } from "node:fs";
import { parseArgs, USAGE } from "./args.js";
import { runCerts } from "./certs.js";
import { runDemo } from "./demo.js";
import { PendingSignals } from "./pending-signals.js";
import { prepareFile } from "./prepare.js";
import { serve } from "./run.js";

export const EXIT = Object.freeze({ OK: 0, RUNTIME: 1, CONFIG: 2 });

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function printProblems(file: string, problems: readonly string[]): void {
  process.stderr.write(`switchyard: invalid config ${file} (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n`);
  for (const p of problems) process.stderr.write(`${p}\n`);
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "certs") return runCerts(argv.slice(1));
  const cmd = parseArgs(argv);
  switch (cmd.kind) {
    case "help":
      process.stdout.write(USAGE + "\n");
      return EXIT.OK;
    case "version":
      process.stdout.write(`switchyard ${version()}\n`);
      return EXIT.OK;
    case "usage-error":
      process.stderr.write(`switchyard: ${cmd.message}\n${USAGE}\n`);
      return EXIT.CONFIG;
    case "demo":
      return withPendingSignals((pending) => runDemo(pending));
    case "check": {
      const result = await prepareFile(cmd.config);
      if (!result.ok) {
        printProblems(cmd.config, result.problems);
        return EXIT.CONFIG;
      }
      process.stdout.write("ok\n");
      return EXIT.OK;
    }
    case "run":
      return withPendingSignals(async (pending) => {
        const result = await prepareFile(cmd.config);
        if (!result.ok) {
          printProblems(cmd.config, result.problems);
          return EXIT.CONFIG;
        }
        const running = await serve(result.prepared, { file: cmd.config, pending });
        return typeof running === "number" ? running : running.done;
      });
  }
}

/** Runs `start` with SIGTERM/SIGINT/SIGHUP recorded from now on, until the proxy takes them over. */
async function withPendingSignals(start: (pending: PendingSignals) => Promise<number>): Promise<number> {
  const pending = new PendingSignals();
  try {
    return await Promise.race([start(pending), pending.forced]);
  } finally {
    pending.dispose();
  }
}
