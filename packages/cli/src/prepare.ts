/**
 * Turns a validated config into what `new Proxy` takes, doing the I/O validation needs:
 * protocol packages and plugin modules are imported and constructed, certificate files read.
 * Every problem is collected; nothing listens here.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { createSecureContext } from "node:tls";
import {
  optionProblems,
  RouteTable,
  TcpProtocol,
  type ListenerConfig,
  type ProtocolHandler,
  type ListenerTls,
  type ProxyPlugin,
  type RouteConfig,
  type Timeouts,
} from "@switchyard/core";
import type { ListenerEntry, LogLevel, PemSource, SwitchyardConfig, TlsEntry } from "./config.js";
import { ConfigLoadError, loadConfigFile } from "./load-config.js";
import { instantiate, loadPluginClass } from "./plugins.js";
import { loadProtocol, PROTOCOLS } from "./protocols.js";
import { checkConfig, isObject, isPluginInstance } from "./validate.js";

/** A constructed plugin and where it came from (to match plugins across reloads). */
export interface PreparedPlugin {
  /** "protocol:<name>" or the plugin's `use`; undefined for instances given in an ES module config */
  readonly key: string | undefined;
  readonly options: unknown;
  readonly plugin: ProxyPlugin;
}

export interface Prepared {
  readonly file: string | undefined;
  readonly config: SwitchyardConfig;
  readonly listeners: ListenerConfig[];
  readonly routes: RouteConfig[];
  /** protocol plugins first, then the config's plugins in order */
  readonly plugins: PreparedPlugin[];
  readonly timeouts: Partial<Timeouts> | undefined;
  readonly shutdownTimeout: number;
  readonly logLevel: LogLevel;
}

export type PrepareResult = { ok: true; prepared: Prepared } | { ok: false; problems: string[] };

/** Loads, validates and prepares a config file. */
export async function prepareFile(file: string): Promise<PrepareResult> {
  let raw: unknown;
  try {
    raw = await loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigLoadError) return { ok: false, problems: [err.message] };
    throw err;
  }
  return prepareConfig(raw, dirname(resolve(file)), file);
}

/** Validates and prepares a config object; relative paths resolve against `baseDir`. */
export async function prepareConfig(raw: unknown, baseDir: string | undefined, file?: string): Promise<PrepareResult> {
  const { problems, config, listenerIndex } = checkConfig(raw);
  // problem paths name a listener by its index in the file, which counts entries that are not objects
  const at = (i: number) => `listeners[${listenerIndex[i] ?? i}]`;
  // the I/O checks still run on the parts that are well-formed, so one run reports everything
  const structural = problems.length > 0;
  const plugins: PreparedPlugin[] = [];

  const used = [...new Set(config.listeners.map((l) => l.protocol))].filter(
    (p) => typeof p === "string" && Object.hasOwn(PROTOCOLS, p),
  );
  const protocols = await Promise.all(
    used.map(async (name): Promise<PreparedPlugin | undefined> => {
      const first = config.listeners.findIndex((l) => l.protocol === name);
      let C;
      try {
        C = await loadProtocol(name, baseDir);
      } catch (err) {
        problems.push(`${at(first)}.protocol: ${(err as Error).message}`);
        return undefined;
      }
      if (!C) return undefined;
      const options = config.protocols?.[name];
      try {
        return { key: `protocol:${name}`, options, plugin: instantiate(C, options, `protocol "${name}"`) };
      } catch (err) {
        // the protocol's own defaults (the config's protocols section) are at fault
        problems.push(`protocols.${name}: ${(err as Error).message}`);
        return undefined;
      }
    }),
  );
  for (const p of protocols) if (p) plugins.push(p);
  await checkUnusedProtocols(config, used, baseDir, problems);

  const entries = config.plugins ?? [];
  const loaded = await Promise.all(
    entries.map(async (entry, i): Promise<PreparedPlugin | undefined> => {
      if (isPluginInstance(entry)) return { key: undefined, options: undefined, plugin: entry };
      if (!isObject(entry) || typeof entry.use !== "string" || entry.use.trim() === "") return undefined;
      let C;
      try {
        C = await loadPluginClass(entry.use, baseDir);
      } catch (err) {
        problems.push(`plugins[${i}].use: ${(err as Error).message}`);
        return undefined;
      }
      try {
        return { key: entry.use, options: entry.options, plugin: instantiate(C, entry.options, `"${entry.use}"`) };
      } catch (err) {
        problems.push(`plugins[${i}].options: ${(err as Error).message}`);
        return undefined;
      }
    }),
  );
  for (const p of loaded) if (p) plugins.push(p);

  const listeners = await Promise.all(config.listeners.map((l, i) => toListener(l, at(i), baseDir, problems)));
  const routes = (config.routes ?? []) as RouteConfig[];
  // the route table's own checks (targets, globs, CIDRs): per route for a precise path, then as a whole
  if (!structural) {
    const before = problems.length;
    routes.forEach((r, i) => {
      try {
        new RouteTable([{ name: `route-${i}`, ...r }]);
      } catch (err) {
        problems.push(`routes[${i}]: ${(err as Error).message}`);
      }
    });
    if (problems.length === before) {
      try {
        new RouteTable(routes);
      } catch (err) {
        problems.push(`routes: ${(err as Error).message}`);
      }
    }
  }
  // protocol and plugin options of listeners and routes (unknown keys, bad values), as `new Proxy` checks them
  if (!structural) problems.push(...optionsProblems(listeners, routes, plugins, at));
  if (problems.length > 0) return { ok: false, problems: problems.sort(byPath) };
  return {
    ok: true,
    prepared: {
      file,
      config,
      listeners,
      routes,
      plugins,
      timeouts: config.timeouts,
      shutdownTimeout: config.shutdownTimeout ?? 10_000,
      logLevel: config.log?.level ?? "info",
    },
  };
}

const TOP_ORDER = ["config", "listeners", "routes", "plugins", "protocols", "timeouts", "shutdownTimeout", "log"];
function byPath(a: string, b: string): number {
  const rank = (s: string) => TOP_ORDER.findIndex((k) => s.startsWith(k));
  return rank(a) - rank(b) || a.localeCompare(b, "en", { numeric: true });
}

/**
 * The options check of core, with config paths. A protocol package's plugin is also the
 * protocol handler it registers (see protocols.ts); "tcp" is core's own.
 */
function optionsProblems(
  listeners: ListenerConfig[],
  routes: RouteConfig[],
  plugins: PreparedPlugin[],
  at: (i: number) => string,
): string[] {
  const protocols = new Map<string, ProtocolHandler>([["tcp", new TcpProtocol()]]);
  for (const p of plugins) {
    const handler = p.plugin as Partial<ProtocolHandler>;
    if (p.key?.startsWith("protocol:") && typeof handler.handle === "function") {
      protocols.set(p.key.slice("protocol:".length), handler as ProtocolHandler);
    }
  }
  return optionProblems(
    listeners,
    routes,
    protocols,
    plugins.map((p) => p.plugin),
    { listener: (_, i) => `${at(i)}.options`, route: (_, i) => `routes[${i}].options` },
  );
}

/**
 * The `protocols` section's entries for protocols no listener uses are not needed to run, but a
 * mistake in them should not wait for the day a listener uses the protocol: they are constructed
 * too when their package is installed (a missing package is no problem while nothing uses it).
 */
async function checkUnusedProtocols(config: SwitchyardConfig, used: readonly string[], baseDir: string | undefined, problems: string[]): Promise<void> {
  if (!isObject(config.protocols)) return;
  const unused = Object.keys(config.protocols).filter((name) => Object.hasOwn(PROTOCOLS, name) && !used.includes(name));
  await Promise.all(
    unused.map(async (name) => {
      const options = (config.protocols as Record<string, unknown>)[name];
      if (options !== undefined && !isObject(options)) return; // reported by validate
      const C = await loadProtocol(name, baseDir).catch(() => undefined);
      if (!C) return;
      try {
        instantiate(C, options, `protocol "${name}"`);
      } catch (err) {
        problems.push(`protocols.${name}: ${(err as Error).message}`);
      }
    }),
  );
}

async function toListener(l: ListenerEntry, at: string, baseDir: string | undefined, problems: string[]): Promise<ListenerConfig> {
  const out: ListenerConfig = { name: l.name, protocol: l.protocol, host: l.host ?? "0.0.0.0", port: l.port };
  if (l.timeouts !== undefined) out.timeouts = l.timeouts;
  if (l.maxConnections !== undefined) out.maxConnections = l.maxConnections;
  if (l.options !== undefined) out.options = l.options;
  if (l.proxyProtocol !== undefined) out.proxyProtocol = l.proxyProtocol;
  if (isObject(l.tls)) {
    const tls = await readTls(l.tls, `${at}.tls`, baseDir, problems);
    if (tls) out.tls = tls;
  }
  return out;
}

async function readTls(t: TlsEntry, path: string, baseDir: string | undefined, problems: string[]): Promise<ListenerTls | undefined> {
  // a pair with a structural problem or a file that cannot be read is reported as such, not also as a bad certificate
  const reported = (...fields: string[]) => problems.some((p) => fields.some((f) => p.startsWith(`${f}:`) || p.startsWith(`${f}.`)));
  const pem = async (src: PemSource, at: string): Promise<string | Buffer> => {
    if (Buffer.isBuffer(src) || typeof src !== "string" || src.trim() === "" || src.includes("-----BEGIN")) return src;
    const file = resolve(baseDir ?? process.cwd(), src);
    try {
      return await readFile(file);
    } catch (err) {
      problems.push(`${at}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return "";
    }
  };
  const tls: ListenerTls = { cert: await pem(t.cert, `${path}.cert`), key: await pem(t.key, `${path}.key`) };
  if (t.ca !== undefined) tls.ca = await pem(t.ca, `${path}.ca`);
  if (t.requestCert !== undefined) tls.requestCert = t.requestCert;
  if (t.rejectUnauthorized !== undefined) tls.rejectUnauthorized = t.rejectUnauthorized;
  // every pair is checked the way core's CertificateStore builds its context: with the listener's ca
  const check = (cert: PemSource, key: PemSource, at: string, fields: string[]) => {
    if (reported(...fields, `${path}.ca`)) return;
    try {
      createSecureContext({ cert, key, ...(tls.ca ? { ca: tls.ca } : {}) });
    } catch (err) {
      problems.push(`${at}: invalid certificate or key: ${(err as Error).message}`);
    }
  };
  check(tls.cert, tls.key, path, [`${path}.cert`, `${path}.key`]);
  if (isObject(t.sni)) {
    const sni: Array<[string, { cert: string | Buffer; key: string | Buffer }]> = [];
    for (const [host, e] of Object.entries(t.sni)) {
      if (!isObject(e)) continue;
      const at = `${path}.sni["${host}"]`;
      const pair = { cert: await pem(e.cert, `${at}.cert`), key: await pem(e.key, `${at}.key`) };
      sni.push([host, pair]);
      check(pair.cert, pair.key, at, [at]);
    }
    tls.sni = Object.fromEntries(sni);
  }
  return tls;
}
