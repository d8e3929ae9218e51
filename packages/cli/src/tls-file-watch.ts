/**
 * Certificates, keys, CAs and CRLs named by file in the config are watched: when one changes on
 * disk (a renewed certificate, a new CRL), the command reloads as on SIGHUP, so new handshakes see
 * the new files and open connections keep theirs. A reload that finds a bad file refuses it and
 * keeps the running one, with its log line, as SIGHUP does.
 *
 * Files are polled (`fs.watchFile`), not watched with inotify: tools that renew certificates
 * replace files by rename, which an inotify watch on the old file would miss. The set of files is
 * the one of the config the command started with.
 */
import { unwatchFile, watchFile, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import type { PemSource, SwitchyardConfig } from "./config.js";

/** How often the files are polled. */
export const TLS_FILE_POLL_MS = 2000;
/** Changes closer together than this make one reload (a certificate and its key replaced together). */
const SETTLE_MS = 300;

/** The TLS files a config names (paths, resolved against the config file's folder). */
export function tlsFilesOf(config: SwitchyardConfig, file: string): string[] {
  const base = dirname(resolve(file));
  const files = new Set<string>();
  const add = (src: PemSource | undefined) => {
    if (typeof src === "string" && src.trim() !== "" && !src.includes("-----BEGIN")) files.add(resolve(base, src));
  };
  for (const l of config.listeners ?? []) {
    const t = l.tls;
    if (t === undefined) continue;
    add(t.cert);
    add(t.key);
    add(t.ca);
    add(t.crl);
    for (const pair of Object.values(t.sni ?? {})) {
      add(pair.cert);
      add(pair.key);
    }
  }
  return [...files];
}

/** Polls `files`; `onChange` runs once per burst of changes. `close()` stops it. */
export function watchTlsFiles(files: readonly string[], onChange: (changed: string[]) => void, pollMs = TLS_FILE_POLL_MS): { close(): void } {
  let pending: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const listeners = files.map((f) => {
    const listener = (now: Stats, before: Stats) => {
      if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
      pending.push(f);
      clearTimeout(timer);
      timer = setTimeout(() => {
        const changed = pending;
        pending = [];
        onChange(changed);
      }, SETTLE_MS);
      timer.unref();
    };
    // not persistent: the watch never keeps the process alive on its own
    watchFile(f, { interval: pollMs, persistent: false }, listener);
    return [f, listener] as const;
  });
  return {
    close() {
      clearTimeout(timer);
      for (const [f, listener] of listeners) unwatchFile(f, listener);
    },
  };
}
