/** Command-line parsing: `switchyard [--config <file>] | check <file> | --help | --version`. */

export type Command =
  | { kind: "run"; config: string }
  | { kind: "demo" }
  | { kind: "check"; config: string }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "usage-error"; message: string };

export const USAGE = `Usage:
  switchyard                      run the embedded demo (TCP echo and HTTP hello behind a proxy)
  switchyard --config <file>      run a proxy from a config file (.json, .yaml/.yml, .mjs/.js)
  switchyard check <file>         validate a config file (and load its plugins), print "ok" or the problems
  switchyard certs ca|server|client|crl|inspect   development certificates as PEM files (certs --help)
  switchyard --help | --version

Signals: SIGTERM/SIGINT close gracefully; SIGHUP reloads routes and plugin options.
Exit codes: 0 ok, 1 runtime failure (e.g. a port in use), 2 invalid config or usage.`;

export function parseArgs(argv: readonly string[]): Command {
  let config: string | undefined;
  let check = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "-h" || a === "--help") return { kind: "help" };
    if (a === "-v" || a === "--version") return { kind: "version" };
    if (a === "-c" || a === "--config") {
      const v = argv[++i];
      if (v === undefined || v === "") return { kind: "usage-error", message: `${a} needs a file` };
      config = v;
    } else if (a.startsWith("--config=")) {
      config = a.slice("--config=".length);
      if (config === "") return { kind: "usage-error", message: "--config needs a file" };
    } else if (a.startsWith("-")) {
      return { kind: "usage-error", message: `unknown option ${a}` };
    } else if (a === "check" && !check && rest.length === 0) {
      check = true;
    } else {
      rest.push(a);
    }
  }
  if (check) {
    const file = config ?? rest.shift();
    if (file === undefined) return { kind: "usage-error", message: "check needs a config file" };
    if (rest.length > 0) return { kind: "usage-error", message: `unexpected argument ${rest[0]}` };
    return { kind: "check", config: file };
  }
  if (rest.length > 0) return { kind: "usage-error", message: `unexpected argument ${rest[0]} (did you mean --config ${rest[0]}?)` };
  return config === undefined ? { kind: "demo" } : { kind: "run", config };
}
