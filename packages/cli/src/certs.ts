/**
 * `switchyard certs ca|server|client|crl|inspect`: development certificates as PEM files, made by
 * the same module the test suites use (@switchyard/plugin-mtls). Private keys are written with
 * mode 0600, and nothing is overwritten without `--force`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  createCa,
  createClientCert,
  createCrl,
  createServerCert,
  formatCertificateSummary,
  inspectCertificate,
  type CertificatePair,
} from "@switchyard/plugin-mtls";

export const CERTS_USAGE = `Usage:
  switchyard certs ca     [--dir d] [--cn "Dev CA"] [--days 3650]                 writes d/ca.pem, d/ca-key.pem
  switchyard certs server --cn name [--san DNS:x|IP:x|URI:x|email:x]... [--name n] [--dir d] [--days 365]
  switchyard certs client --cn name [--san ...]... [--name n] [--dir d] [--days 365]
                          server/client: signed by d/ca.pem, written to d/<name>.pem and d/<name>-key.pem
  switchyard certs crl    [--revoke cert.pem]... [--dir d] [--days 30]            writes d/ca-crl.pem
  switchyard certs inspect <file.pem>                                              subject, SANs, issuer, validity, SHA-256
Options: --dir defaults to ".", --name to the common name; --force overwrites existing files.`;

interface Flags {
  dir: string;
  cn: string | undefined;
  name: string | undefined;
  days: number | undefined;
  sans: string[];
  revoke: string[];
  force: boolean;
  rest: string[];
}

class UsageError extends Error {}

function parseFlags(args: readonly string[]): Flags {
  const f: Flags = { dir: ".", cn: undefined, name: undefined, days: undefined, sans: [], revoke: [], force: false, rest: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined || v === "") throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === "--dir") f.dir = value();
    else if (a === "--cn") f.cn = value();
    else if (a === "--name") f.name = value();
    else if (a === "--san") f.sans.push(value());
    else if (a === "--revoke") f.revoke.push(value());
    else if (a === "--force") f.force = true;
    else if (a === "--days") {
      const d = Number(value());
      if (!Number.isInteger(d) || d <= 0) throw new UsageError("--days must be a positive whole number");
      f.days = d;
    } else if (a.startsWith("-")) throw new UsageError(`unknown option ${a}`);
    else f.rest.push(a);
  }
  return f;
}

function write(f: Flags, file: string, text: string, secret: boolean): string {
  const path = join(f.dir, file);
  if (!f.force && existsSync(path)) throw new UsageError(`${path} exists (--force overwrites it)`);
  writeFileSync(path, text, { mode: secret ? 0o600 : 0o644 });
  return path;
}

function readCa(f: Flags): CertificatePair {
  const certPath = join(f.dir, "ca.pem");
  const keyPath = join(f.dir, "ca-key.pem");
  if (!existsSync(certPath) || !existsSync(keyPath)) throw new UsageError(`no CA in ${f.dir} (run "switchyard certs ca --dir ${f.dir}" first)`);
  return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8") };
}

/** a common name as a file name: letters, digits, dot, dash and underscore */
function fileName(f: Flags, cn: string): string {
  return f.name ?? (cn.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "") || "cert");
}

/** Runs one `certs` subcommand; returns the exit code (0 ok, 1 failure, 2 usage). */
export function runCerts(args: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): number {
  const [sub, ...rest] = args;
  if (sub === "--help" || sub === "-h" || sub === "help") {
    out(`${CERTS_USAGE}\n`);
    return 0;
  }
  try {
    const f = parseFlags(rest);
    const days = f.days !== undefined ? { days: f.days } : {};
    if (sub === "inspect") {
      if (f.rest.length !== 1) throw new UsageError("inspect needs one certificate file");
      out(formatCertificateSummary(inspectCertificate(readFileSync(f.rest[0] as string))) + "\n");
      return 0;
    }
    if (f.rest.length > 0) throw new UsageError(`unexpected argument ${f.rest[0]}`);
    if (sub === "ca") {
      mkdirSync(f.dir, { recursive: true });
      const ca = createCa({ commonName: f.cn ?? "Switchyard Development CA", ...days });
      out(`${write(f, "ca.pem", ca.cert, false)}\n${write(f, "ca-key.pem", ca.key, true)}\n`);
      return 0;
    }
    if (sub === "server" || sub === "client") {
      if (f.cn === undefined) throw new UsageError(`${sub} needs --cn`);
      const ca = readCa(f);
      const o = { ca, commonName: f.cn, ...days, ...(f.sans.length > 0 ? { sans: f.sans } : {}) };
      const pair = sub === "server" ? createServerCert(o) : createClientCert(o);
      const name = fileName(f, f.cn);
      out(`${write(f, `${name}.pem`, pair.cert, false)}\n${write(f, `${name}-key.pem`, pair.key, true)}\n`);
      return 0;
    }
    if (sub === "crl") {
      const ca = readCa(f);
      const crl = createCrl({ ca, revoked: f.revoke.map((p) => readFileSync(p, "utf8")), ...days });
      out(`${write({ ...f, force: true }, "ca-crl.pem", crl, false)}\n`);
      return 0;
    }
    throw new UsageError(sub === undefined ? "certs needs a subcommand" : `unknown certs subcommand ${sub}`);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`switchyard certs: ${e.message}\n${CERTS_USAGE}\n`);
      return 2;
    }
    err(`switchyard certs: ${(e as Error).message}\n`);
    return 1;
  }
}
