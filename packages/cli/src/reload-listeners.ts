/**
 * The listener part of a SIGHUP reload: compares the running listeners with the new file's (by
 * name, with certificate files already read, so a renewed certificate at the same path counts as
 * a change) and applies the difference without a restart:
 * - gone from the file: stop accepting, drain its connections until the shutdown deadline;
 * - new in the file: bind it;
 * - another protocol, host or port: remove, then add under the same name (its old connections
 *   drain); if the new address cannot be bound, the old one is bound again;
 * - only tls, timeouts, maxConnections or options changed: applied in place to connections
 *   accepted from now on (certificate rotation).
 */
import { isDeepStrictEqual } from "node:util";
import type { ListenerConfig, Logger, Proxy } from "@switchyard/core";

export interface ListenerReload {
  added: string[];
  removed: string[];
  moved: string[];
  reconfigured: string[];
  failed: string[];
}

export interface ListenerReloadOptions {
  /** how long a removed listener's connections may finish */
  drainMs: number;
  log: Logger;
  /** called for every listener bound by the reload (prints its `listening` line) */
  announce(name: string): void;
}

const ADDRESS_KEYS = ["protocol", "host", "port"] as const;

export async function reloadListeners(
  proxy: Proxy,
  before: readonly ListenerConfig[],
  after: readonly ListenerConfig[],
  options: ListenerReloadOptions,
): Promise<ListenerReload> {
  const { log, drainMs } = options;
  const result: ListenerReload = { added: [], removed: [], moved: [], reconfigured: [], failed: [] };
  const old = new Map(before.map((l) => [l.name, l]));
  const next = new Map(after.map((l) => [l.name, l]));
  const drain = (name: string) => {
    proxy
      .removeListener(name, { timeout: drainMs })
      .then(() => log.info("reload.listener-drained", { listener: name }))
      .catch((err: unknown) => log.error("reload.listener-failed", { listener: name, error: (err as Error).message }));
  };
  const add = async (l: ListenerConfig): Promise<boolean> => {
    try {
      await proxy.addListener(l);
      options.announce(l.name);
      return true;
    } catch (err) {
      log.error("reload.listener-failed", { listener: l.name, error: (err as Error).message });
      return false;
    }
  };

  // removals first: their ports are free as soon as removeListener is called
  for (const name of old.keys()) {
    if (next.has(name)) continue;
    drain(name);
    result.removed.push(name);
  }
  for (const [name, l] of next) {
    const was = old.get(name);
    if (!was) {
      (await add(l)) ? result.added.push(name) : result.failed.push(name);
      continue;
    }
    if (isDeepStrictEqual(was, l)) continue;
    if (ADDRESS_KEYS.some((k) => was[k] !== l[k])) {
      // the port it really has (port 0 picked one), to bind the same again if the move fails
      const port = proxy.addresses().find((a) => a.name === name)?.port ?? was.port;
      drain(name);
      if (await add(l)) result.moved.push(name);
      else {
        result.failed.push(name);
        if (await add({ ...was, port })) {
          log.warn("reload.listener-kept", { listener: name, note: "the new address could not be bound; the old one serves again" });
        }
      }
      continue;
    }
    try {
      proxy.reconfigureListener(name, {
        tls: l.tls ?? null,
        timeouts: l.timeouts ?? {},
        maxConnections: l.maxConnections ?? null,
        options: l.options ?? {},
      });
      result.reconfigured.push(name);
    } catch (err) {
      log.error("reload.listener-failed", { listener: name, error: (err as Error).message });
      result.failed.push(name);
    }
  }
  return result;
}
