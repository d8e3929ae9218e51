#!/usr/bin/env node
import { main } from "./main.js";

process.stdout.on("error", () => {});
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`switchyard: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
