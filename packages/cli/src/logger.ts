/**
 * The command's logger: one JSON object per line on stdout, written by pino through an
 * asynchronous destination (the proxy never waits for stdout), in the shape the command always
 * had: `{"level":"info","time":"<ISO>","msg":"connection.open",...fields}`.
 *
 * The level is ours, not pino's: every line is checked against one threshold shared by the root
 * and its children before anything is built, so `setLevel` on a reload reaches the child loggers
 * plugins took (`proxy.logger.child?.({ plugin: name })`) and a disabled level costs one compare.
 */
import { pino, type Logger as Pino } from "pino";
import type { JsonLogger, Logger, LogLevel } from "@switchyard/core";

const ORDER: Readonly<Record<LogLevel, number>> = Object.freeze({ debug: 10, info: 20, warn: 30, error: 40, silent: 99 });

/** Buffered output is written in batches of this size, or at least every FLUSH_MS. */
const BATCH_BYTES = 12 * 1024; // below sonic-boom's maxWrite (16 KiB)
const FLUSH_MS = 100;
/**
 * Past this much unwritten output (stdout blocked: a paused pager, a full pipe) lines are
 * dropped, not buffered without bound.
 */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** How long `close` waits for buffered lines to be written. */
const CLOSE_WAIT_MS = 2000;

export interface CommandLogger extends JsonLogger {
  /** A logger whose lines also carry `bindings`, following this one's level. */
  child(bindings: Record<string, unknown>): Logger;
  /**
   * Writes one line whose fields are already JSON (`"k":v,"k2":v2`, no braces), for lines logged
   * per request: the same shape as `info(msg, fields)` without building and walking an object.
   */
  infoJson(msg: string, fieldsJson: string): void;
  /** Whether lines of `level` are written now. */
  isEnabled(level: Exclude<LogLevel, "silent">): boolean;
  /** Calls `listener` after every level change (the event wiring subscribes and unsubscribes). */
  onLevelChange(listener: () => void): void;
  /** Writes what is buffered (waiting at most 2 s); lines logged afterwards are dropped. */
  close(): Promise<void>;
}

interface Shared {
  min: number;
}

function adapt(p: Pino, shared: Shared): Logger & { child(bindings: Record<string, unknown>): Logger } {
  return {
    debug: (msg, fields) => {
      if (ORDER.debug >= shared.min) p.debug({ msg, ...fields });
    },
    info: (msg, fields) => {
      if (ORDER.info >= shared.min) p.info({ msg, ...fields });
    },
    warn: (msg, fields) => {
      if (ORDER.warn >= shared.min) p.warn({ msg, ...fields });
    },
    error: (msg, fields) => {
      if (ORDER.error >= shared.min) p.error({ msg, ...fields });
    },
    child: (bindings) => adapt(p.child(bindings), shared),
  };
}

/**
 * A logger at `level`. Lines go to stdout, or to `write` (one line at a time, without its
 * newline) when given.
 */
export function createCommandLogger(level: LogLevel, write?: (line: string) => void): CommandLogger {
  const shared: Shared = { min: ORDER[level] };
  const listeners: Array<() => void> = [];
  let close: () => Promise<void>;
  let stream: pino.DestinationStream;
  if (write) {
    stream = { write: (chunk: string) => write(chunk.endsWith("\n") ? chunk.slice(0, -1) : chunk) };
    close = async () => {};
  } else {
    const dest = pino.destination({
      dest: 1,
      sync: false,
      minLength: BATCH_BYTES,
      periodicFlush: FLUSH_MS,
      maxLength: MAX_BUFFERED_BYTES,
    });
    // stdout closed under us (EPIPE): nothing to log to, and no reason to crash the proxy
    dest.on("error", () => {});
    stream = dest;
    let closed: Promise<void> | undefined;
    close = () =>
      (closed ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        timer.unref();
        dest.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        dest.end(); // fd 1 itself stays open
      }));
  }
  // pino writes every level it is given; the threshold above filters first
  const root = pino(
    {
      level: "debug",
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  const logger = adapt(root, shared);
  const head = `{"level":"info","time":"`;
  // one ISO time string per millisecond: under load many lines share it
  let isoMs = 0;
  let iso = "";
  return {
    ...logger,
    infoJson(msg, fieldsJson) {
      if (ORDER.info < shared.min) return;
      const now = Date.now();
      if (now !== isoMs) {
        isoMs = now;
        iso = new Date(now).toISOString();
      }
      stream.write(`${head}${iso}","msg":${JSON.stringify(msg)},${fieldsJson}}\n`);
    },
    isEnabled: (l) => ORDER[l] >= shared.min,
    setLevel(next) {
      shared.min = ORDER[next];
      for (const l of listeners) l();
    },
    onLevelChange(listener) {
      listeners.push(listener);
    },
    close() {
      shared.min = ORDER.silent;
      return close();
    },
  };
}
