/**
 * Runs a prepared config: builds the Proxy, binds every listener, prints one `listening` line
 * per listener, logs connection events and requests as JSON lines (logger.ts, event-log.ts), and
 * handles signals
 * (SIGTERM/SIGINT: graceful close; SIGHUP: reload).
 */
import { Proxy } from "@switchyard/core";
import { hostPort, logEvents } from "./event-log.js";
import { createCommandLogger } from "./logger.js";
import type { PendingSignals } from "./pending-signals.js";
import type { Prepared } from "./prepare.js";
import { Reloader } from "./reload.js";
import { tlsFilesOf, watchTlsFiles } from "./tls-file-watch.js";

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

/** Starts the proxy; resolves once listening (or with a failed `done` when it cannot start). */
export async function serve(prepared: Prepared, options: ServeOptions = {}): Promise<Running | number> {
  const out = options.stdout ?? ((l: string) => void process.stdout.write(l + "\n"));
  const err = options.stderr ?? ((l: string) => void process.stderr.write(l + "\n"));
  const log = options.stdout ? createCommandLogger(prepared.logLevel, options.stdout) : createCommandLogger(prepared.logLevel);
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
    await log.close();
    return EXIT_CONFIG;
  }
  try {
    await proxy.listen();
  } catch (e) {
    err(`switchyard: cannot start: ${(e as Error).message}`);
    await proxy.close({ timeout: 0 }).catch(() => {});
    await options.onClose?.();
    await log.close();
    return EXIT_RUNTIME;
  }
  const announce = (name: string) => {
    const a = proxy.address(name);
    out(`listening ${a.name} ${a.protocol} ${hostPort(a.host, a.port)}`);
  };
  const reloader = options.file ? new Reloader(proxy, prepared, options.file, log, announce) : undefined;
  // a certificate, key, CA or CRL file that changes on disk reloads as SIGHUP does
  const tlsFiles = options.file ? tlsFilesOf(prepared.config, options.file) : [];
  const watcher =
    reloader && tlsFiles.length > 0
      ? watchTlsFiles(tlsFiles, (changed) => {
          log.info("reload.tls-files", { changed });
          onHup();
        })
      : undefined;
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
        void log.close().then(() => resolve(EXIT_RUNTIME));
        return;
      }
      closing = true;
      watcher?.close();
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
        await log.close();
        resolve(EXIT_OK);
      })().catch(async (e: unknown) => {
        err(`switchyard: close failed: ${(e as Error).message}`);
        await log.close();
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
