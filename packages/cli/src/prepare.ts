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
  type ListenerConfig,
  type ListenerTls,
  type MatchKeyKind,
  type ProxyPlugin,
  type RouteConfig,
  type Timeouts,
} from "@switchyard/core";
import type { ListenerEntry, LogLevel, PemSource, PluginEntry, SwitchyardConfig, TlsEntry } from "./config.js";
import { ConfigLoadError, loadConfigFile } from "./load-config.js";
import { instantiate, loadPluginClass } from "./plugins.js";
import { loadProtocol, probeProtocols, PROTOCOLS, unknownProtocolMessage, type ProbeResult } from "./protocols.js";
import { didYouMean, quote } from "./suggest.js";
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

  // the config's plugins first: the protocols they register need no built-in package
  const entries = config.plugins ?? [];
  const loaded = await Promise.all(entries.map((entry, i) => loadPlugin(entry, i, baseDir, problems)));
  const configured = loaded.flatMap((p) => (p ? [p] : []));
  const probed = probeProtocols(configured.map((p) => p.probe));
  if (probed.failed) problems.push(`${pluginPath(configured, probed.failed.index)}: ${probed.failed.message}`);

  const { all, final } = await resolveProtocols(config, configured, probed, at, baseDir, problems);
  await checkProtocolsSection(config, probed, configured, baseDir, problems);
  const plugins = all.map((p) => p.prepared);

  const listeners = await Promise.all(config.listeners.map((l, i) => toListener(l, at(i), baseDir, problems)));
  const routes = (config.routes ?? []) as RouteConfig[];
  // match keys come from the protocols loaded: known only once every listener's protocol is
  const keysKnown = !final.failed && config.listeners.every((l) => final.handlers.has(l.protocol));
  if (keysKnown) problems.push(...matchKeyProblems(routes, final.matchKeys));
  const matchKeys = { kindOf: (name: string) => final.matchKeys.get(name) };
  // the route table's own checks (targets, globs, CIDRs): per route for a precise path, then as a whole
  if (!structural) {
    const before = problems.length;
    routes.forEach((r, i) => {
      try {
        new RouteTable([{ name: `route-${i}`, ...r }], matchKeys);
      } catch (err) {
        problems.push(`routes[${i}]: ${(err as Error).message}`);
      }
    });
    if (problems.length === before) {
      try {
        new RouteTable(routes, matchKeys);
      } catch (err) {
        problems.push(`routes: ${(err as Error).message}`);
      }
    }
  }
  // protocol and plugin options of listeners and routes (unknown keys, bad values), as `new Proxy` checks them
  if (!structural && !final.failed) problems.push(...optionsProblems(listeners, routes, all, final, at));
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

/** Route `match` fields that the route table has matchers of its own for (HTTP's). */
const TABLE_MATCH_FIELDS = ["path", "method"];

/**
 * `match` fields no loaded protocol or plugin registered (core's route table would compare an
 * unknown field as a glob against a key nobody fills: the route never matches).
 */
function matchKeyProblems(routes: readonly RouteConfig[], registered: ReadonlyMap<string, MatchKeyKind>): string[] {
  const known = [...TABLE_MATCH_FIELDS, ...registered.keys()].sort();
  const problems: string[] = [];
  routes.forEach((r, i) => {
    if (!isObject(r) || !isObject(r.match)) return;
    for (const k of Object.keys(r.match)) {
      if (known.includes(k)) continue;
      problems.push(`routes[${i}].match.${k}: unknown match key "${k}"${didYouMean(k, known)}: known are ${quote(known)} (core's, and those the listeners' protocols and the plugins register)`);
    }
  });
  return problems;
}

const TOP_ORDER = ["config", "listeners", "routes", "plugins", "protocols", "timeouts", "shutdownTimeout", "log"];
function byPath(a: string, b: string): number {
  const rank = (s: string) => TOP_ORDER.findIndex((k) => s.startsWith(k));
  return rank(a) - rank(b) || a.localeCompare(b, "en", { numeric: true });
}

/**
 * The options check of core, with config paths, against what the probe saw registered: the
 * probe's own instances stand for the running ones (a protocol package is usually its own
 * plugin, reading route options only where it serves).
 */
function optionsProblems(
  listeners: ListenerConfig[],
  routes: RouteConfig[],
  plugins: readonly Loaded[],
  probed: ProbeResult,
  at: (i: number) => string,
): string[] {
  return optionProblems(
    listeners,
    routes,
    probed.handlers,
    plugins.map((p) => p.probe),
    { listener: (_, i) => `${at(i)}.options`, route: (_, i) => `routes[${i}].options` },
  );
}

/** A plugin loaded for the config: the instance the proxy will run, and a twin for the probe. */
interface Loaded {
  readonly prepared: PreparedPlugin;
  /** applied to the probe proxy only: a fresh instance (the same one for an ES module config's instance) */
  readonly probe: ProxyPlugin;
  /** where it came from: `plugins[i]`, or `protocols.<name>` for a built-in protocol */
  readonly path: string;
}

function pluginPath(loaded: readonly Loaded[], index: number): string {
  return loaded[index]?.path ?? "plugins";
}

/** Loads and constructs one `plugins` entry; problems are pushed, undefined returned. */
async function loadPlugin(entry: PluginEntry, i: number, baseDir: string | undefined, problems: string[]): Promise<Loaded | undefined> {
  const path = `plugins[${i}]`;
  if (isPluginInstance(entry)) return { prepared: { key: undefined, options: undefined, plugin: entry }, probe: entry, path };
  if (!isObject(entry) || typeof entry.use !== "string" || entry.use.trim() === "") return undefined;
  let C;
  try {
    C = await loadPluginClass(entry.use, baseDir);
  } catch (err) {
    problems.push(`${path}.use: ${(err as Error).message}`);
    return undefined;
  }
  try {
    const plugin = instantiate(C, entry.options, `"${entry.use}"`);
    return { prepared: { key: entry.use, options: entry.options, plugin }, probe: instantiate(C, entry.options, `"${entry.use}"`), path };
  } catch (err) {
    problems.push(`${path}.options: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * Every listener's protocol: registered by the config's plugins (`probed`), else one of this
 * project's packages loaded now (PROTOCOLS), else a problem with the closest known name.
 * Returns the plugins in the order the running proxy applies them (the loaded protocol packages
 * first) and what that proxy will have registered.
 */
async function resolveProtocols(
  config: SwitchyardConfig,
  configured: readonly Loaded[],
  probed: ProbeResult,
  at: (i: number) => string,
  baseDir: string | undefined,
  problems: string[],
): Promise<{ all: Loaded[]; final: ProbeResult }> {
  const wanted = [...new Set(config.listeners.map((l) => l.protocol))].filter((p) => typeof p === "string" && p !== "");
  const builtIn = wanted.filter((name) => !probed.handlers.has(name) && Object.hasOwn(PROTOCOLS, name));
  const loaded = await Promise.all(builtIn.map((name) => loadBuiltIn(name, config, at, baseDir, problems)));
  const protocolPlugins = loaded.flatMap((p) => (p ? [p] : []));
  const builtInProbe = probeProtocols(protocolPlugins.map((p) => p.probe));
  if (builtInProbe.failed) problems.push(`${pluginPath(protocolPlugins, builtInProbe.failed.index)}: ${builtInProbe.failed.message}`);
  // a later registration of a name wins, as in registerProtocol
  const final: ProbeResult = {
    handlers: new Map([...builtInProbe.handlers, ...probed.handlers]),
    registeredBy: probed.registeredBy,
    matchKeys: new Map([...builtInProbe.matchKeys, ...probed.matchKeys]),
    failed: probed.failed ?? builtInProbe.failed,
  };
  // a plugin whose apply threw may have been the one registering a protocol: that failure is the problem
  if (!final.failed) {
    const known = new Set([...final.handlers.keys(), ...Object.keys(PROTOCOLS)]);
    config.listeners.forEach((l, i) => {
      if (typeof l.protocol !== "string" || l.protocol === "" || final.handlers.has(l.protocol)) return;
      if (Object.hasOwn(PROTOCOLS, l.protocol)) return; // its package failed to load: reported by loadBuiltIn
      problems.push(`${at(i)}.protocol: ${unknownProtocolMessage(l.protocol, known)}`);
    });
  }
  return { all: [...protocolPlugins, ...configured], final };
}

/** Loads the package of a built-in protocol a listener names (see protocols.ts). */
async function loadBuiltIn(
  name: string,
  config: SwitchyardConfig,
  at: (i: number) => string,
  baseDir: string | undefined,
  problems: string[],
): Promise<Loaded | undefined> {
  const first = config.listeners.findIndex((l) => l.protocol === name);
  let C;
  try {
    C = await loadProtocol(name, baseDir);
  } catch (err) {
    problems.push(`${at(first)}.protocol: ${(err as Error).message}`);
    return undefined;
  }
  if (!C) return undefined; // core's tcp
  const options = config.protocols?.[name];
  try {
    const plugin = instantiate(C, options, `protocol "${name}"`);
    const probe = instantiate(C, options, `protocol "${name}"`);
    return { prepared: { key: `protocol:${name}`, options, plugin }, probe, path: `protocols.${name}` };
  } catch (err) {
    // the protocol's own defaults (the config's protocols section) are at fault
    problems.push(`protocols.${name}: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * The `protocols` section: options for the built-in protocols the command loads itself. An entry
 * for a protocol a configured plugin registers is refused (its options go in that plugin's
 * entry). An entry for a protocol no listener uses is not needed to run, but a mistake in it
 * should not wait for the day a listener uses it: it is constructed too when its package is
 * installed (a missing package is no problem while nothing uses it).
 */
async function checkProtocolsSection(
  config: SwitchyardConfig,
  probed: ProbeResult,
  configured: readonly Loaded[],
  baseDir: string | undefined,
  problems: string[],
): Promise<void> {
  if (!isObject(config.protocols)) return;
  const names = Object.keys(config.protocols).filter((name) => Object.hasOwn(PROTOCOLS, name));
  for (const name of names) {
    const by = probed.registeredBy.get(name);
    if (by !== undefined && by >= 0) {
      problems.push(`protocols.${name}: "${name}" is registered by ${pluginPath(configured, by)}: give its options there`);
    }
  }
  const used = new Set(config.listeners.map((l) => l.protocol));
  const unused = names.filter((name) => !used.has(name) && !probed.handlers.has(name));
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
  if (t.minVersion !== undefined) tls.minVersion = t.minVersion;
  if (t.ciphers !== undefined) tls.ciphers = t.ciphers;
  if (t.honorCipherOrder !== undefined) tls.honorCipherOrder = t.honorCipherOrder;
  if (t.verifyClient !== undefined) tls.verifyClient = t.verifyClient;
  if (t.crl !== undefined) tls.crl = await pem(t.crl, `${path}.crl`);
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
  if (tls.crl !== undefined && !reported(`${path}.crl`, `${path}.ca`)) {
    try {
      createSecureContext({ ...(tls.ca ? { ca: tls.ca } : {}), crl: tls.crl });
    } catch (err) {
      problems.push(`${path}.crl: invalid CRL: ${(err as Error).message}`);
    }
  }
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
