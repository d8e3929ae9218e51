import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { ConfigError } from "./errors.js";
import { listenerTlsProblems } from "./options-check.js";
import type { Logger } from "./plugin.js";
import { CertificateStore } from "./tls.js";
import type { ListenerConfig, ListenerTls, Timeouts } from "./types.js";

/** What the proxy keeps per listener: its config, server, certificates, deadlines and count. */
export interface ListenerRuntime {
  config: Readonly<ListenerConfig>;
  server: Server | undefined;
  certs: CertificateStore | undefined;
  timeouts: Timeouts;
  active: number;
}

/** Builds a listener's runtime; bad certificates throw here, before anything changes. */
export function listenerRuntime(config: ListenerConfig, defaults: Timeouts): ListenerRuntime {
  return {
    config: Object.freeze({ ...config }),
    server: undefined,
    certs: config.tls ? certificateStore(config) : undefined,
    timeouts: { ...defaults, ...config.timeouts },
    active: 0,
  };
}

/** What `Proxy.reconfigureListener` may change on a bound listener. */
export interface ListenerChanges {
  /** new certificates (null: stop terminating TLS) for connections accepted from now on */
  tls?: ListenerTls | null;
  timeouts?: Partial<Timeouts>;
  /** null: unlimited */
  maxConnections?: number | null;
  options?: Record<string, unknown>;
}

/**
 * Applies changes to a runtime in place. The certificate store is built first, so a bad
 * certificate leaves the listener as it was. Connections already accepted keep the config object
 * they were given.
 */
export function applyListenerChanges(l: ListenerRuntime, changes: ListenerChanges, defaults: Timeouts): void {
  const next: ListenerConfig = { ...l.config };
  if (changes.tls !== undefined) {
    if (changes.tls === null) delete next.tls;
    else next.tls = changes.tls;
  }
  if (changes.timeouts !== undefined) next.timeouts = changes.timeouts;
  if (changes.maxConnections !== undefined) {
    if (changes.maxConnections === null) delete next.maxConnections;
    else next.maxConnections = changes.maxConnections;
  }
  if (changes.options !== undefined) next.options = changes.options;
  const certs = changes.tls === undefined ? l.certs : next.tls ? certificateStore(next) : undefined;
  l.certs = certs;
  l.config = Object.freeze(next);
  l.timeouts = { ...defaults, ...next.timeouts };
}

function certificateStore(config: ListenerConfig): CertificateStore {
  const problems = listenerTlsProblems(config.tls, `listener "${config.name}": tls`);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  try {
    return new CertificateStore(config.tls!);
  } catch (err) {
    throw new ConfigError(`listener "${config.name}": tls: ${(err as Error).message}`, { cause: err });
  }
}

/** Binds a listener's server; on failure nothing stays bound and the error is thrown. */
export async function bindListener(l: ListenerRuntime, onSocket: (socket: Socket) => void, logger: Logger): Promise<void> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, onSocket);
  server.on("error", (err) => logger.error("listener error", { listener: l.config.name, error: err.message }));
  server.listen(l.config.port, l.config.host ?? "0.0.0.0");
  try {
    await Promise.race([once(server, "listening"), once(server, "error").then(([e]) => Promise.reject(e))]);
  } catch (err) {
    server.close();
    throw err;
  }
  l.server = server;
}

/** Stops accepting; resolves once the server's own connections have all closed. */
export function unbindListener(l: ListenerRuntime): Promise<void> {
  const server = l.server;
  if (!server?.listening) return Promise.resolve();
  return new Promise<void>((resolve) => server.close(() => resolve()));
}
