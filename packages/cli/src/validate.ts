/**
 * Structural validation of a config object, by hand so every problem is reported at once with
 * its field path (`listeners[0].port: must be an integer 0-65535`). Things that need I/O
 * (protocol packages, plugin modules, certificate files) are checked by `prepare` afterwards,
 * and so is whether a listener's protocol exists: loaded packages register protocols.
 */
import { isIP } from "node:net";
import { createSecureContext } from "node:tls";
import { parseTarget, VERIFY_CLIENT_MODES, type ProxyPlugin, type TargetInput, type VerifyClientMode } from "@switchyard/core";
import type { ListenerEntry, PluginEntry, RouteEntry, SwitchyardConfig } from "./config.js";
import { PROTOCOLS } from "./protocols.js";
import { didYouMean, oneOf } from "./suggest.js";

export interface ValidationResult {
  /** one `path: message` line per problem; empty when the config is valid */
  problems: string[];
  /** the config with defaults applied (meaningful only when `problems` is empty) */
  config: SwitchyardConfig;
}

/** What `prepare` needs besides: where each kept listener was in the input (non-objects are dropped). */
export interface CheckedConfig extends ValidationResult {
  /** `listenerIndex[i]` is the index in the input's `listeners` of `config.listeners[i]` */
  listenerIndex: number[];
}

const TOP_KEYS = ["listeners", "routes", "plugins", "protocols", "timeouts", "shutdownTimeout", "log", "$schema"];
const LISTENER_KEYS = ["name", "protocol", "host", "port", "tls", "timeouts", "maxConnections", "options", "proxyProtocol"];
const TLS_KEYS = ["cert", "key", "ca", "sni", "requestCert", "rejectUnauthorized", "verifyClient", "crl", "minVersion", "ciphers", "honorCipherOrder"];
/** core's listener `minVersion` values */
const TLS_VERSIONS = ["TLSv1.2", "TLSv1.3"];
const ROUTE_KEYS = ["name", "listener", "match", "targets", "lb", "priority", "options"];
const PLUGIN_KEYS = ["use", "options"];
const TIMEOUT_KEYS = ["handshake", "connect", "idle", "lifetime"];
/** the keys of core's TargetInput object form and of its TargetTls */
const TARGET_KEYS = ["host", "port", "scheme", "tls", "meta"];
const TARGET_TLS_KEYS = ["ca", "servername", "rejectUnauthorized", "cert", "key", "alpn"];
const LB = ["round-robin", "least-connections", "random"];
const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"];

type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

class Checker {
  readonly problems: string[] = [];

  add(path: string, message: string): void {
    this.problems.push(`${path}: ${message}`);
  }

  /** flags keys not in `allowed`; returns false when `value` is not an object at all */
  object(path: string, value: unknown, allowed: readonly string[]): value is Obj {
    if (!isObject(value)) {
      this.add(path, "must be an object");
      return false;
    }
    for (const k of Object.keys(value)) this.known(path, k, allowed);
    return true;
  }

  /** flags `key` of the object at `path` when it is not in `allowed` */
  known(path: string, key: string, allowed: readonly string[]): void {
    if (!allowed.includes(key)) this.add(`${path}.${key}`, `unknown field${didYouMean(key, allowed)}`);
  }

  string(path: string, value: unknown): value is string {
    if (typeof value === "string" && value.trim() !== "") return true;
    this.add(path, "must be a non-empty string");
    return false;
  }

  stringOrList(path: string, value: unknown): string[] | undefined {
    if (typeof value === "string" && value !== "") return [value];
    if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string" && v !== "")) {
      return value as string[];
    }
    this.add(path, "must be a non-empty string or a non-empty array of strings");
    return undefined;
  }

  integer(path: string, value: unknown, min: number, max: number, what = `an integer ${min}-${max}`): boolean {
    if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return true;
    this.add(path, `must be ${what}`);
    return false;
  }

  options(path: string, value: unknown): void {
    if (value !== undefined && !isObject(value)) this.add(path, "must be an object");
  }

  timeouts(path: string, value: unknown): void {
    if (value === undefined || !this.object(path, value, TIMEOUT_KEYS)) return;
    for (const k of TIMEOUT_KEYS) {
      if (value[k] !== undefined) this.integer(`${path}.${k}`, value[k], 0, 2 ** 31 - 1, "a non-negative integer (milliseconds)");
    }
  }
}

/** Checks a config object and applies defaults. Never throws on bad input. */
export function validateConfig(raw: unknown): ValidationResult {
  const { problems, config } = checkConfig(raw);
  return { problems, config };
}

/** `validateConfig`, also telling where each listener came from. */
export function checkConfig(raw: unknown): CheckedConfig {
  const c = new Checker();
  const empty: SwitchyardConfig = { listeners: [] };
  if (!c.object("config", raw, TOP_KEYS)) return { problems: c.problems, config: empty, listenerIndex: [] };

  const { listeners, listenerIndex } = checkListeners(c, raw.listeners);
  const names = new Set(listeners.map((l) => l.name));
  const routes = checkRoutes(c, raw.routes, names);
  const plugins = checkPlugins(c, raw.plugins);
  c.timeouts("timeouts", raw.timeouts);
  if (raw.shutdownTimeout !== undefined) {
    c.integer("shutdownTimeout", raw.shutdownTimeout, 0, 2 ** 31 - 1, "a non-negative integer (milliseconds)");
  }
  if (raw.log !== undefined && c.object("log", raw.log, ["level"])) {
    const level = raw.log.level;
    if (level !== undefined && !LOG_LEVELS.includes(level as string)) c.add("log.level", oneOf(level, LOG_LEVELS));
  }
  if (raw.protocols !== undefined && c.object("protocols", raw.protocols, Object.keys(PROTOCOLS))) {
    for (const [k, v] of Object.entries(raw.protocols)) c.options(`protocols.${k}`, v);
  }
  const config = { ...(raw as unknown as SwitchyardConfig), listeners, routes, plugins };
  return { problems: c.problems, config, listenerIndex };
}

function checkListeners(c: Checker, value: unknown): { listeners: ListenerEntry[]; listenerIndex: number[] } {
  const out: ListenerEntry[] = [];
  const listenerIndex: number[] = [];
  if (!Array.isArray(value) || value.length === 0) {
    c.add("listeners", "must be a non-empty array");
    return { listeners: out, listenerIndex };
  }
  const seen = new Set<string>();
  value.forEach((l: unknown, i) => {
    const p = `listeners[${i}]`;
    if (!c.object(p, l, LISTENER_KEYS)) return;
    if (c.string(`${p}.name`, l.name)) {
      if (seen.has(l.name)) c.add(`${p}.name`, `duplicate listener name "${l.name}"`);
      seen.add(l.name);
    }
    // which names exist depends on the packages loaded: prepare checks them
    if (l.protocol === undefined) c.add(`${p}.protocol`, "is required");
    else c.string(`${p}.protocol`, l.protocol);
    if (l.host !== undefined) c.string(`${p}.host`, l.host);
    if (l.port === undefined) c.add(`${p}.port`, "is required (an integer 0-65535; 0 picks a free port)");
    else c.integer(`${p}.port`, l.port, 0, 65535);
    if (l.maxConnections !== undefined) c.integer(`${p}.maxConnections`, l.maxConnections, 1, 2 ** 31 - 1, "a positive integer");
    c.timeouts(`${p}.timeouts`, l.timeouts);
    c.options(`${p}.options`, l.options);
    if (l.tls !== undefined) checkTls(c, `${p}.tls`, l.tls);
    out.push({ ...(l as unknown as ListenerEntry), host: typeof l.host === "string" ? l.host : "0.0.0.0" });
    listenerIndex.push(i);
  });
  return { listeners: out, listenerIndex };
}

function checkTls(c: Checker, p: string, tls: unknown): void {
  if (!c.object(p, tls, TLS_KEYS)) return;
  const pem = (path: string, v: unknown, required: boolean) => {
    if (v === undefined && !required) return;
    if (Buffer.isBuffer(v)) return;
    if (typeof v !== "string" || v.trim() === "") c.add(path, "must be a file path or PEM text");
  };
  pem(`${p}.cert`, tls.cert, true);
  pem(`${p}.key`, tls.key, true);
  pem(`${p}.ca`, tls.ca, false);
  pem(`${p}.crl`, tls.crl, false);
  if (tls.verifyClient !== undefined && !VERIFY_CLIENT_MODES.includes(tls.verifyClient as VerifyClientMode)) {
    c.add(`${p}.verifyClient`, oneOf(tls.verifyClient, VERIFY_CLIENT_MODES));
  }
  for (const k of ["requestCert", "rejectUnauthorized", "honorCipherOrder"]) {
    if (tls[k] !== undefined && typeof tls[k] !== "boolean") c.add(`${p}.${k}`, "must be true or false");
  }
  if (tls.minVersion !== undefined && !TLS_VERSIONS.includes(tls.minVersion as string)) c.add(`${p}.minVersion`, oneOf(tls.minVersion, TLS_VERSIONS));
  if (tls.ciphers !== undefined && c.string(`${p}.ciphers`, tls.ciphers)) {
    const err = cipherListProblem(tls.ciphers);
    if (err !== undefined) c.add(`${p}.ciphers`, err);
  }
  // any host glob is a key: only the shape of the value is checked (`sni: ~` is null, not an object)
  if (tls.sni !== undefined && c.object(`${p}.sni`, tls.sni, isObject(tls.sni) ? Object.keys(tls.sni) : [])) {
    for (const [host, entry] of Object.entries(tls.sni)) {
      const ep = `${p}.sni["${host}"]`;
      if (!c.object(ep, entry, ["cert", "key"])) continue;
      pem(`${ep}.cert`, entry.cert, true);
      pem(`${ep}.key`, entry.key, true);
    }
  }
}

/** What OpenSSL says of a cipher list (`ciphers`), or undefined when it names at least one cipher. */
function cipherListProblem(ciphers: string): string | undefined {
  try {
    createSecureContext({ ciphers });
    return undefined;
  } catch (err) {
    return `is not an OpenSSL cipher list this Node accepts (${(err as Error).message})`;
  }
}

function checkRoutes(c: Checker, value: unknown, listeners: ReadonlySet<string>): RouteEntry[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    c.add("routes", "must be an array");
    return [];
  }
  const seen = new Set<string>();
  value.forEach((r: unknown, i) => {
    const p = `routes[${i}]`;
    if (!c.object(p, r, ROUTE_KEYS)) return;
    if (r.name !== undefined && c.string(`${p}.name`, r.name)) {
      if (seen.has(r.name)) c.add(`${p}.name`, `duplicate route name "${r.name}"`);
      seen.add(r.name);
    }
    if (r.listener !== undefined) {
      const list = c.stringOrList(`${p}.listener`, r.listener);
      list?.forEach((name, j) => {
        const lp = Array.isArray(r.listener) ? `${p}.listener[${j}]` : `${p}.listener`;
        if (!listeners.has(name)) c.add(lp, `no listener named "${name}"`);
      });
    }
    // which match keys exist depends on the protocols loaded: prepare checks the names
    if (r.match !== undefined && c.object(`${p}.match`, r.match, isObject(r.match) ? Object.keys(r.match) : [])) {
      for (const [k, v] of Object.entries(r.match)) {
        if (v === undefined) continue;
        const list = c.stringOrList(`${p}.match.${k}`, v);
        if (k === "clientIp" && list) {
          list.forEach((ip, j) => {
            const err = checkCidr(ip);
            if (err) c.add(Array.isArray(v) ? `${p}.match.clientIp[${j}]` : `${p}.match.clientIp`, err);
          });
        }
      }
    }
    checkTargets(c, `${p}.targets`, r.targets);
    if (r.lb !== undefined && !LB.includes(r.lb as string)) c.add(`${p}.lb`, oneOf(r.lb, LB));
    if (r.priority !== undefined && (typeof r.priority !== "number" || !Number.isFinite(r.priority))) {
      c.add(`${p}.priority`, "must be a number");
    }
    c.options(`${p}.options`, r.options);
  });
  return value as RouteEntry[];
}

function checkTargets(c: Checker, p: string, targets: unknown): void {
  if (!Array.isArray(targets) || targets.length === 0) {
    c.add(p, "must be a non-empty array");
    return;
  }
  targets.forEach((t, j) => {
    const err = checkTarget(t);
    if (err) c.add(`${p}[${j}]`, err);
    // core ignores keys it does not know: a misspelt one (`rejectUnauthorised`) would do nothing
    if (!isObject(t)) return;
    for (const k of Object.keys(t)) c.known(`${p}[${j}]`, k, TARGET_KEYS);
    if (isObject(t.tls)) for (const k of Object.keys(t.tls)) c.known(`${p}[${j}].tls`, k, TARGET_TLS_KEYS);
  });
}

/** Returns what is wrong with a target (core's `parseTarget` message), or undefined. */
export function checkTarget(t: unknown): string | undefined {
  try {
    parseTarget(t as TargetInput);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function checkCidr(text: string): string | undefined {
  const [addr, bits, extra] = text.split("/");
  const family = isIP(addr ?? "");
  if (family === 0 || extra !== undefined) return `"${text}" is not an IP address or CIDR`;
  if (bits === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${text}": prefix length must be 0-${max}`;
  return undefined;
}

function checkPlugins(c: Checker, value: unknown): PluginEntry[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    c.add("plugins", "must be an array");
    return [];
  }
  value.forEach((entry: unknown, i) => {
    const p = `plugins[${i}]`;
    if (isPluginInstance(entry)) return;
    if (!c.object(p, entry, PLUGIN_KEYS)) return;
    c.string(`${p}.use`, entry.use);
  });
  return value as PluginEntry[];
}

/** A plugin object given directly (ES module configs): `{ name, apply }`. */
export function isPluginInstance(v: unknown): v is ProxyPlugin {
  return isObject(v) && typeof v.apply === "function" && typeof v.name === "string";
}
