// Starting and talking to bench child processes; machine description; markdown helpers.
import { spawn, execSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";

export const here = (p) => new URL(p, import.meta.url).pathname;

/**
 * The glibc malloc thresholds the `switchyard` command sets (read from its launcher, one source),
 * given to every Node process the benches start — backend, Switchyard and the Node peers alike.
 * Page faults are very expensive on this VM (~15 µs each) and glibc's default heap trimming makes
 * a proxy fault on every few responses (BENCHMARKS.md, "Page faults"). BENCH_MALLOC=default runs
 * everything with glibc's defaults instead.
 */
export const MALLOC_TUNABLES =
  process.env.BENCH_MALLOC === "default"
    ? undefined
    : /GLIBC_TUNABLES:\+\$GLIBC_TUNABLES:\}([^"]+)"/.exec(readFileSync(here("../../packages/cli/bin/switchyard"), "utf8"))?.[1];
if (process.env.BENCH_MALLOC !== "default" && !MALLOC_TUNABLES) throw new Error("bench: no malloc tunables found in packages/cli/bin/switchyard");
const mallocEnv = MALLOC_TUNABLES ? { GLIBC_TUNABLES: MALLOC_TUNABLES } : {};

/**
 * Runs `node [flags] script ...args` as a child through bash so its fd limit is raised to the
 * hard limit first; an IPC channel carries messages both ways. `stdoutNull` sends the child's
 * stdout to /dev/null (a proxy that logs a line per request).
 */
export function startNode(script, args = [], { flags = [], env = {}, stdoutNull = false } = {}) {
  const child = spawn(
    "bash",
    ["-c", `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"${stdoutNull ? " >/dev/null" : ""}`, process.execPath, ...flags, script, ...args],
    { stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, ...mallocEnv, ...env } },
  );
  const inbox = [];
  const waiters = [];
  child.on("message", (m) => {
    const i = waiters.findIndex((w) => w.type === m.type || m.type === "error");
    if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
    else inbox.push(m);
  });
  const exited = new Promise((r) => child.once("exit", (code, sig) => r({ code, sig })));
  exited.then((e) => {
    for (const w of waiters.splice(0)) w.resolve({ type: "error", error: `child exited (${e.code ?? e.sig})` });
  });
  /** next message of a type (or an error), bounded in time */
  function next(type, timeoutMs = 120_000) {
    const i = inbox.findIndex((m) => m.type === type || m.type === "error");
    const p =
      i >= 0
        ? Promise.resolve(inbox.splice(i, 1)[0])
        : new Promise((resolve) => waiters.push({ type, resolve }));
    let t;
    const timeout = new Promise((r) => (t = setTimeout(() => r({ type: "error", error: `no "${type}" within ${timeoutMs} ms` }), timeoutMs)));
    return Promise.race([p, timeout]).then((m) => {
      clearTimeout(t);
      if (m.type === "error") throw new Error(`${script}: ${m.error}`);
      return m;
    });
  }
  return {
    child,
    next,
    send: (m) => child.connected && child.send(m),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.send?.({ type: "stop" });
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** A server process (backend or proxy) started and ready: { port, ...handle }. */
export async function startServer(script, args = [], opts) {
  const h = startNode(here(script), args, opts);
  const { port } = await h.next("ready", 15_000);
  return { ...h, port, async rss() { return (await (h.send({ type: "rss" }), h.next("rss"))); } };
}

/** Runs one load-generator task to completion in its own process. */
export async function load(task) {
  const timeoutMs = task.timeoutMs ?? 60_000;
  return runLoad("./loadgen.mjs", { ...task, timeoutMs }, timeoutMs + 5000);
}

/**
 * Runs a load-generator script of bench/lib (its JSON task as argv[2]) in its own process and
 * returns its "result" message, waiting at most `timeoutMs`.
 */
export async function runLoad(script, task, timeoutMs) {
  const h = startNode(here(script), [JSON.stringify(task)]);
  try {
    return await h.next("result", timeoutMs);
  } finally {
    await h.stop();
  }
}

/**
 * User + system CPU seconds used so far by a process and its descendants (nginx's workers),
 * from /proc; NaN when unavailable (not Linux, or the process is gone).
 */
export function treeCpuSeconds(pid) {
  return treeStat(pid).cpu;
}

/**
 * CPU seconds (user + system) and minor page faults so far of a process and its descendants,
 * from /proc; NaN when unavailable.
 */
export function treeStat(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    const total = { cpu: (Number(fields[11]) + Number(fields[12])) / 100, faults: Number(fields[7]) };
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/)) {
        if (child === "") continue;
        const c = treeStat(Number(child));
        total.cpu += c.cpu;
        total.faults += c.faults;
      }
    }
    return total;
  } catch {
    return { cpu: NaN, faults: NaN };
  }
}

export function machine() {
  let cpu = "unknown";
  try {
    cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpu;
  } catch {}
  let nproc = os.availableParallelism?.() ?? os.cpus().length;
  try {
    nproc = Number(execSync("nproc").toString().trim());
  } catch {}
  return {
    nproc,
    cpu,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    kernel: os.release(),
    date: new Date().toISOString(),
  };
}

export function table(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function writeResult(name, markdown) {
  mkdirSync(here("../results/"), { recursive: true });
  writeFileSync(here(`../results/${name}.md`), markdown.trimEnd() + "\n");
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const met = (ok) => (ok ? "met" : "**NOT met**");
