/**
 * Where a listener's protocol comes from. A protocol exists when something registers it with the
 * proxy (`proxy.registerProtocol(handler)` in a plugin's `apply`):
 * - "tcp" is core's own;
 * - a package named in the config's `plugins` registers the protocols it provides — this is how
 *   a third-party protocol package is used from a config file;
 * - a protocol that no configured plugin registers is looked up in `PROTOCOLS`, the packages of
 *   this project the command loads by itself when a listener names them (so `protocol: http`
 *   works without a `plugins` entry), imported lazily so a missing one is a config problem.
 *
 * Which protocols the plugins register is found by applying them to a probe `Proxy` that never
 * listens (see `probeProtocols`).
 */
import { Proxy, silentLogger, type Logger, type MatchKeyKind, type ProtocolHandler, type ProxyOptions, type ProxyPlugin } from "@switchyard/core";
import { importModule, ModuleNotFound } from "./plugins.js";
import { didYouMean, quote } from "./suggest.js";

export interface ProtocolSource {
  /** npm package that provides the protocol */
  readonly package: string;
  /** the ProxyPlugin class it exports, constructed as `new C(options)` */
  readonly export: string;
}

/** Protocols of this project the command loads by itself (null: built into core). */
export const PROTOCOLS: Readonly<Record<string, ProtocolSource | null>> = Object.freeze({
  tcp: null,
  http: { package: "@switchyard/protocol-http", export: "HttpProtocol" },
  postgres: { package: "@switchyard/protocol-tcp", export: "PostgresProtocol" },
  mysql: { package: "@switchyard/protocol-tcp", export: "MysqlProtocol" },
  smtp: { package: "@switchyard/protocol-smtp", export: "SmtpProtocol" },
});

export type ProtocolClass = new (options?: unknown) => ProxyPlugin;

/**
 * Loads the class providing built-in `protocol` (undefined for tcp). Throws an Error whose
 * message is ready to show after the field path.
 */
export async function loadProtocol(protocol: string, baseDir: string | undefined): Promise<ProtocolClass | undefined> {
  if (!Object.hasOwn(PROTOCOLS, protocol)) throw new Error(`unknown protocol "${protocol}"`);
  const source = PROTOCOLS[protocol];
  if (source === undefined) throw new Error(`unknown protocol "${protocol}"`);
  if (source === null) return undefined;
  let ns: Record<string, unknown>;
  try {
    ns = await importModule(source.package, baseDir);
  } catch (err) {
    if (err instanceof ModuleNotFound) {
      throw new Error(`protocol "${protocol}" comes from ${source.package}, which is not installed next to the config or the command`);
    }
    throw new Error(`protocol "${protocol}": ${source.package} failed to load: ${(err as Error).message}`);
  }
  const C = ns[source.export];
  if (typeof C !== "function") {
    throw new Error(`protocol "${protocol}" is not available: ${source.package} does not export ${source.export} (upgrade it)`);
  }
  return C as ProtocolClass;
}

/** Silent, with the `child` the running command's logger has (a plugin may take one in `apply`). */
const PROBE_LOGGER: Logger = { ...silentLogger, child: () => PROBE_LOGGER };

/** What the probe found: each registered protocol, and the index of the plugin that registered it. */
export interface ProbeResult {
  /** protocol name → its handler (later registrations win, as in a real proxy) */
  readonly handlers: Map<string, ProtocolHandler>;
  /** protocol name → index in the probed list of the plugin that registered it (-1: core) */
  readonly registeredBy: Map<string, number>;
  /**
   * the match keys a route may use and their kinds: core's own (`host`, `sni`, `clientIp`), then
   * those protocols (`ProtocolHandler.matchKeys`) and plugins (`registerMatchKey`) registered
   */
  readonly matchKeys: Map<string, MatchKeyKind>;
  /** a plugin's `apply` threw: the index and message (the plugins after it were not applied) */
  readonly failed: { index: number; message: string } | undefined;
}

/**
 * Applies `plugins`, in order, to a `Proxy` that has no listeners and never listens, and records
 * what each registers with `registerProtocol`. Give it instances that the running proxy will not
 * use (a protocol may keep per-proxy state from `apply`).
 */
export function probeProtocols(plugins: readonly ProxyPlugin[]): ProbeResult {
  const handlers = new Map<string, ProtocolHandler>();
  const registeredBy = new Map<string, number>();
  const matchKeys = new Map<string, MatchKeyKind>(coreMatchKeys());
  let current = -1;
  // fields of a subclass do not exist yet while the base constructor applies the plugins: the
  // recording state lives in this closure
  class Probe extends Proxy {
    override registerProtocol(handler: ProtocolHandler): void {
      handlers.set(handler.name, handler);
      registeredBy.set(handler.name, current);
      super.registerProtocol(handler);
      // recorded once core accepted them (a conflicting kind throws above)
      for (const [name, kind] of Object.entries(handler.matchKeys ?? {})) matchKeys.set(name, kind);
    }
    override registerMatchKey(name: string, kind: MatchKeyKind): void {
      super.registerMatchKey(name, kind);
      matchKeys.set(name, kind);
    }
  }
  // each plugin is wrapped to know which one is applying; the wrapper only forwards `apply`
  const wrapped = plugins.map((p, i): ProxyPlugin => ({
    name: p.name,
    apply(proxy) {
      current = i;
      p.apply(proxy);
      current = -1;
    },
  }));
  const options: ProxyOptions = { listeners: [], plugins: wrapped, logger: PROBE_LOGGER };
  try {
    new Probe(options);
    return { handlers, registeredBy, matchKeys, failed: undefined };
  } catch (err) {
    return { handlers, registeredBy, matchKeys, failed: { index: current, message: (err as Error).message } };
  }
}

let coreKeys: ReadonlyArray<readonly [string, MatchKeyKind]> | undefined;

/** The match keys of a proxy without plugins (core's own), asked of core once. */
function coreMatchKeys(): ReadonlyArray<readonly [string, MatchKeyKind]> {
  return (coreKeys ??= new Proxy({ listeners: [], logger: PROBE_LOGGER }).matchKeys);
}

/** The problem for a listener protocol nobody registers, with the closest known name. */
export function unknownProtocolMessage(name: string, known: Iterable<string>): string {
  const names = [...new Set(known)].sort();
  return `unknown protocol "${name}"${didYouMean(name, names)}: known are ${quote(names)}, and those a package in plugins registers`;
}
