/**
 * Runs a prepared config: builds the Proxy, binds every listener, prints one `listening` line
 * per listener, logs connection events as JSON lines, and handles signals
 * (SIGTERM/SIGINT: graceful close; SIGHUP: reload).
 */
import { createJsonLogger, formatTarget, Proxy, type Logger } from "@switchyard/core";
import type { PendingSignals } from "./pending-signals.js";
import type { Prepared } from "./prepare.js";
import { Reloader } from "./reload.js";

export interface ServeOptions {
  /** the config file, re-read on SIGHUP (the demo has none) */
  file?: string;
  /** printed after the listening lines (the demo's "try this") */
  banner?: (proxy: Proxy) => string;
  /** called after the proxy closed (the demo stops its backends) */
  onClose?: () => Promise<void>;
  /** signals recorded since the command started: acted on once the proxy runs (see pending-signals.ts) */
  pending?: PendingSignals;
  /** where lines go (default: process.stdout / process.stderr) */
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
}

/** A running proxy: `done` resolves with the exit code once a signal has closed it. */
export interface Running {
  readonly proxy: Proxy;
  readonly done: Promise<number>;
}

const EXIT_OK = 0;
const EXIT_RUNTIME = 1;
const EXIT_CONFIG = 2;

function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Wires report-only events to one JSON log line each. */
function logEvents(proxy: Proxy, log: Logger): void {
  proxy.events.on("connectionOpen", (c) => {
    log.info("connection.open", {
      id: c.id,
      listener: c.listener,
      protocol: c.protocol,
      client: hostPort(c.clientIp, c.clientPort),
      tls: c.tls,
    });
  });
  proxy.events.on("connectionClose", (c, info) => {
    log.info("connection.close", {
      id: c.id,
      listener: c.listener,
      protocol: c.protocol,
      client: hostPort(c.clientIp, c.clientPort),
      reason: info.reason,
      bytesIn: info.bytesIn,
      bytesOut: info.bytesOut,
      durationMs: info.durationMs,
      route: info.route ?? null,
      target: info.target ?? null,
      ...(info.error ? { error: info.error.message } : {}),
    });
  });
  proxy.events.on("upstreamError", ({ connection, target, error }) => {
    log.warn("upstream.error", {
      id: connection.id,
      listener: connection.listener,
      target: formatTarget(target),
      code: error.code,
      error: error.message,
    });
  });
}

/** Starts the proxy; resolves once listening (or with a failed `done` when it cannot start). */
export async function serve(prepared: Prepared, options: ServeOptions = {}): Promise<Running | number> {
  const out = options.stdout ?? ((l: string) => void process.stdout.write(l + "\n"));
  const err = options.stderr ?? ((l: string) => void process.stderr.write(l + "\n"));
  const log = createJsonLogger(out, prepared.logLevel);
  let proxy: Proxy;
  try {
    proxy = new Proxy({
      listeners: prepared.listeners,
      routes: prepared.routes,
      plugins: prepared.plugins.map((p) => p.plugin),
      ...(prepared.timeouts ? { timeouts: prepared.timeouts } : {}),
      logger: log,
    });
  } catch (e) {
    err(`switchyard: invalid config: ${(e as Error).message}`);
    return EXIT_CONFIG;
  }
  try {
    await proxy.listen();
  } catch (e) {
    err(`switchyard: cannot start: ${(e as Error).message}`);
    await proxy.close({ timeout: 0 }).catch(() => {});
    await options.onClose?.();
    return EXIT_RUNTIME;
  }
  const announce = (name: string) => {
    const a = proxy.address(name);
    out(`listening ${a.name} ${a.protocol} ${hostPort(a.host, a.port)}`);
  };
  const reloader = options.file ? new Reloader(proxy, prepared, options.file, log, announce) : undefined;
  let onHup = () => {};
  let onStop = (_: NodeJS.Signals) => {};
  const done = new Promise<number>((resolve) => {
    let closing = false;
    onHup = () => {
      // a reload now would bind listeners and replace routes of a proxy that is closing
      if (closing) return log.warn("reload.skipped", { reason: "shutting down" });
      if (!reloader) return log.warn("reload.skipped", { reason: "no config file (demo mode)" });
      void reloader.reload();
    };
    onStop = (signal: NodeJS.Signals) => {
      if (closing) {
        log.warn("shutdown.forced", { signal });
        resolve(EXIT_RUNTIME);
        return;
      }
      closing = true;
      reloader?.close();
      const timeout = reloader?.shutdownTimeout ?? prepared.shutdownTimeout;
      const open = proxy.connections.size;
      // close() stops accepting synchronously; log after that, so the line means "not accepting"
      const closed = proxy.close({ timeout });
      log.info("shutdown", { signal, timeoutMs: timeout, open });
      void (async () => {
        await closed;
        await options.onClose?.();
        process.off("SIGTERM", onStop).off("SIGINT", onStop).off("SIGHUP", onHup);
        log.info("shutdown.done", {});
        resolve(EXIT_OK);
      })().catch((e: unknown) => {
        err(`switchyard: close failed: ${(e as Error).message}`);
        resolve(EXIT_RUNTIME);
      });
    };
  });
  // handlers first, so a signal sent as soon as the listening lines appear is handled; in the
  // same tick the startup handlers hand over what they recorded
  process.on("SIGTERM", onStop).on("SIGINT", onStop).on("SIGHUP", onHup);
  const early = options.pending?.takeOver();
  for (const a of proxy.addresses()) announce(a.name);
  if (options.banner) out(options.banner(proxy));
  logEvents(proxy, log);
  // signals sent while starting: a stop closes at once (a SIGHUP with it is then skipped), else a reload
  if (early?.stop) onStop(early.stop);
  if (early?.hup) onHup();
  return { proxy, done };
}
