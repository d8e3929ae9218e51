import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";

/** the installed `switchyard` command (a sh launcher that execs node on dist/bin.js) */
export const BIN = fileURLToPath(new URL("./bin/switchyard", import.meta.resolve("@switchyard/cli/package.json")));
export const CLI_INDEX_URL = import.meta.resolve("@switchyard/cli");

const children = new Set<ChildProcess>();
const servers = new Set<Server>();
const sockets = new Set<Socket>();
const dirs: string[] = [];

/** Writes `content` to a file in a fresh temp directory; returns its path. */
export function tmpFile(name: string, content: string, dir?: string): string {
  const d = dir ?? mkdtempSync(join(tmpdir(), "switchyard-cli-"));
  if (!dir) dirs.push(d);
  const path = join(d, name);
  writeFileSync(path, content);
  return path;
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion. */
export async function runCli(args: string[], timeoutMs = 15_000): Promise<Result> {
  const child = startCli(args);
  const timer = setTimeout(() => child.process.kill("SIGKILL"), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

export interface CliProcess {
  process: ChildProcess;
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** resolves with the first stdout line matching `re` (already seen or future) */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** the real ports of the `listening <name> <protocol> <host>:<port>` lines, by name */
  listening(count: number): Promise<Record<string, number>>;
}

export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; bin?: string } = {}): CliProcess {
  const child = spawn(opts.bin ?? BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: opts.env ?? process.env });
  children.add(child);
  let out = "";
  let err = "";
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      children.delete(child);
      for (const w of [...waiters]) w();
      resolve(code);
    });
  });
  const waitFor = (re: RegExp, timeoutMs = 10_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        for (const line of out.split("\n")) {
          const m = line.match(re);
          if (m) {
            done();
            return resolve(m);
          }
        }
        if (child.exitCode !== null) {
          done();
          reject(new Error(`exited (${child.exitCode}) before ${re}\nstdout:\n${out}\nstderr:\n${err}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${re}\nstdout:\n${out}\nstderr:\n${err}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
      };
      waiters.push(check);
      check();
    });
  const listening = async (count: number) => {
    const ports: Record<string, number> = {};
    await waitForCount(count);
    for (const line of out.split("\n")) {
      const m = /^listening (\S+) (\S+) (\S+):(\d+)$/.exec(line);
      if (m) ports[m[1]!] = Number(m[4]);
    }
    return ports;
  };
  const waitForCount = async (count: number) => {
    const deadline = Date.now() + 10_000;
    while (out.split("\n").filter((l) => l.startsWith("listening ")).length < count) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`no ${count} listening lines\nstdout:\n${out}\nstderr:\n${err}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { process: child, exited, stdout: () => out, stderr: () => err, waitFor, listening };
}

/** A TCP backend that answers each chunk with `<tag>:<chunk>`. */
export async function startBackend(tag: string): Promise<number> {
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {}).on("close", () => sockets.delete(s));
    s.on("data", (d) => s.write(`${tag}:${d}`));
    s.on("end", () => s.end());
  });
  servers.add(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** A client connection that can do request/answer round trips. */
export async function client(port: number): Promise<{ socket: Socket; ask(text: string): Promise<string> }> {
  const socket = connect(port, "127.0.0.1");
  sockets.add(socket);
  socket.on("error", () => {});
  await once(socket, "connect");
  socket.setEncoding("utf8");
  const ask = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${text}`)), 5000);
      socket.once("data", (d: string) => {
        clearTimeout(timer);
        resolve(d);
      });
      socket.write(text);
    });
  return { socket, ask };
}

/** Kills every child process and closes every server and socket the test opened. */
export async function cleanup(): Promise<void> {
  for (const c of children) c.kill("SIGKILL");
  await Promise.all([...children].map((c) => once(c, "exit").catch(() => {})));
  children.clear();
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all([...servers].map((s) => new Promise((r) => s.close(r))));
  servers.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/**
 * One round trip over TLS with a client certificate to a listener whose backend echoes with a
 * prefix: the answer, or "" when the proxy refused the client. `keep` takes the socket when the
 * answer came (else it is destroyed).
 */
export async function askOverTls(port: number, ca: string, who: { cert: string; key: string }, keep?: (s: TLSSocket) => void): Promise<string> {
  const s = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost", cert: who.cert, key: who.key });
  s.on("error", () => {});
  s.write("x");
  const answer = await new Promise<string>((resolve) => {
    const t = setTimeout(() => resolve(""), 3000);
    s.once("data", (d: Buffer) => (clearTimeout(t), resolve(d.toString())));
    s.once("close", () => (clearTimeout(t), resolve("")));
  });
  if (keep && answer !== "") keep(s);
  else s.destroy();
  return answer;
}
