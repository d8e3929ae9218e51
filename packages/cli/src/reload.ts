/**
 * SIGHUP: re-read the config file, validate it completely, then apply what can change while
 * running — listeners (added, removed, moved, certificates rotated: reload-listeners.ts), the
 * proxy-wide timeouts, the route table, and the options of plugins present before and after
 * (same `use`), and the log level. Added or removed plugins need a restart: a warning says so. An
 * invalid file changes nothing. Established connections keep the route they were given.
 */
import { isDeepStrictEqual } from "node:util";
import { ConfigError, type JsonLogger, type ListenerConfig, type Proxy } from "@switchyard/core";
import { prepareFile, type Prepared, type PreparedPlugin } from "./prepare.js";
import { reloadListeners } from "./reload-listeners.js";

interface Running {
  timeouts: Prepared["timeouts"];
  logLevel: Prepared["logLevel"];
  /** as applied: certificate files read */
  listeners: ListenerConfig[];
  plugins: PreparedPlugin[];
  shutdownTimeout: number;
}

/**
 * What a plugin is across reloads: its `use` (or "protocol:<name>"); a plugin instance given in an
 * ES module config has none and is a new object every time the file is read, so it is known by
 * its class and name.
 */
function identity(p: PreparedPlugin): string {
  if (p.key !== undefined) return `use:${p.key}`;
  const ctor = (Object.getPrototypeOf(p.plugin) as { constructor?: { name?: string } } | null)?.constructor?.name ?? "";
  return `instance:${ctor}:${p.plugin.name}`;
}

/** Pairs plugins by identity and occurrence ("the 2nd @x/plugin-a" matches the 2nd one). */
function pair(before: readonly PreparedPlugin[], after: readonly PreparedPlugin[]) {
  const index = (list: readonly PreparedPlugin[]) => {
    const seen = new Map<string, number>();
    return list.map((p) => {
      const id = identity(p);
      const n = seen.get(id) ?? 0;
      seen.set(id, n + 1);
      return `${id}#${n}`;
    });
  };
  const a = index(before);
  const b = index(after);
  const matched: Array<[PreparedPlugin, PreparedPlugin]> = [];
  before.forEach((p, i) => {
    const j = b.indexOf(a[i] as string);
    if (j >= 0) matched.push([p, after[j] as PreparedPlugin]);
  });
  // a matched instance stays as it is (the running one is kept; an instance has no options to compare)
  const added = after.filter((_, j) => !a.includes(b[j] as string)).map(describe);
  const removed = before.filter((_, i) => !b.includes(a[i] as string)).map(describe);
  return { matched, added, removed };
}

const describe = (p: PreparedPlugin) => p.key ?? `${p.plugin.name} (instance)`;

export class Reloader {
  readonly #proxy: Proxy;
  readonly #file: string;
  readonly #log: JsonLogger;
  readonly #running: Running;
  readonly #announce: (name: string) => void;
  #queue: Promise<void> = Promise.resolve();
  #closing = false;

  /** `announce` prints the `listening` line of a listener bound by a reload */
  constructor(proxy: Proxy, prepared: Prepared, file: string, log: JsonLogger, announce: (name: string) => void = () => {}) {
    this.#proxy = proxy;
    this.#file = file;
    this.#log = log;
    this.#announce = announce;
    this.#running = {
      timeouts: prepared.timeouts,
      logLevel: prepared.logLevel,
      listeners: prepared.listeners,
      plugins: [...prepared.plugins],
      shutdownTimeout: prepared.shutdownTimeout,
    };
  }

  get shutdownTimeout(): number {
    return this.#running.shutdownTimeout;
  }

  /** The proxy is shutting down: a reload queued or still reading the file applies nothing. */
  close(): void {
    this.#closing = true;
  }

  /** Reloads once; overlapping calls run one after the other. Never throws. */
  reload(): Promise<void> {
    this.#queue = this.#queue.then(() => this.#reload()).catch((err: unknown) => {
      this.#log.error("reload.failed", { file: this.#file, error: (err as Error).message });
    });
    return this.#queue;
  }

  #skipped(): void {
    this.#log.warn("reload.skipped", { reason: "shutting down" });
  }

  async #reload(): Promise<void> {
    const log = this.#log;
    if (this.#closing) return this.#skipped();
    const result = await prepareFile(this.#file);
    if (this.#closing) return this.#skipped();
    if (!result.ok) {
      log.error("reload.invalid", { file: this.#file, problems: result.problems, note: "kept the running config" });
      return;
    }
    const next = result.prepared;
    const old = this.#running;
    const restart: string[] = [];
    // routes first (a listener bound below finds its routes there): the running proxy checks
    // their options against the listeners they will serve and the plugins it runs, which lack
    // any plugin this file adds (that needs a restart). Refused, nothing is applied.
    try {
      this.#proxy.setRoutes(next.routes, next.listeners);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      log.error("reload.invalid", {
        file: this.#file,
        problems: err.message.split("\n"),
        note: "kept the running config (route options of a plugin added by this file need a restart)",
      });
      return;
    }
    if (old.logLevel !== next.logLevel) {
      log.setLevel(next.logLevel);
      old.logLevel = next.logLevel;
    }
    const { matched, added, removed } = pair(old.plugins, next.plugins);
    if (added.length > 0) restart.push(`plugins added (${added.join(", ")})`);
    if (removed.length > 0) restart.push(`plugins removed (${removed.join(", ")})`);

    if (!isDeepStrictEqual(old.timeouts, next.timeouts)) {
      this.#proxy.setTimeouts(next.timeouts ?? {});
      old.timeouts = next.timeouts;
    }
    const listeners = await reloadListeners(this.#proxy, old.listeners, next.listeners, {
      drainMs: next.shutdownTimeout,
      log,
      announce: this.#announce,
    });
    // a listener that failed to change keeps running as it was (or stays absent); the next
    // reload sees the difference again and retries
    old.listeners = next.listeners.flatMap((l) => {
      if (!listeners.failed.includes(l.name)) return [l];
      const was = old.listeners.find((w) => w.name === l.name);
      return was ? [was] : [];
    });
    const reconfigured: string[] = [];
    for (const [before, after] of matched) {
      if (isDeepStrictEqual(before.options, after.options)) continue;
      const plugin = before.plugin;
      if (typeof plugin.reconfigure !== "function") {
        restart.push(`${describe(before)} options (the plugin cannot reconfigure)`);
        continue;
      }
      try {
        plugin.reconfigure(after.options ?? {});
        reconfigured.push(describe(before));
        const i = old.plugins.indexOf(before);
        old.plugins[i] = { ...before, options: after.options };
      } catch (err) {
        log.error("reload.plugin-failed", { plugin: describe(before), error: (err as Error).message });
      }
    }
    old.shutdownTimeout = next.shutdownTimeout;
    const { failed, ...listenerChanges } = listeners;
    log.info("reload.ok", { file: this.#file, routes: next.routes.length, reconfigured, listeners: listenerChanges, ...(failed.length ? { failedListeners: failed } : {}) });
    if (restart.length > 0) {
      log.warn("reload.restart-needed", {
        notApplied: restart,
        note: "these changes take effect after a restart; the rest was applied",
      });
    }
  }
}
