import { appendHeader, ConfigError, removeHeader, setHeader, type HeaderPairs } from "@switchyard/core";

/** Declarative edits of one header list, applied in the order remove → set → append. */
export interface HeaderRules {
  /** names to remove (every occurrence) */
  remove?: string[];
  /** replace every occurrence with one value (added when absent) */
  set?: Record<string, string>;
  /** add one more occurrence (or several) at the end */
  append?: Record<string, string | string[]>;
}

/** Rules for both directions: what goes upstream and what comes back downstream. */
export interface HeaderRuleSet {
  request?: HeaderRules;
  response?: HeaderRules;
}

const NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function checkName(name: unknown, where: string): string {
  if (typeof name !== "string" || !NAME.test(name)) throw new ConfigError(`${where}: invalid header name ${JSON.stringify(name)}`);
  return name;
}

function checkValue(value: unknown, where: string): string {
  if (typeof value !== "string" || /[\r\n\0]/.test(value)) {
    throw new ConfigError(`${where}: header values must be strings without CR, LF or NUL`);
  }
  return value;
}

/** Validates rules from options or a route and returns a normalised copy. */
export function validateRules(input: unknown, where: string): HeaderRules {
  if (input === undefined) return {};
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw new ConfigError(`${where}: must be an object`);
  const src = input as Record<string, unknown>;
  for (const key of Object.keys(src)) {
    if (key !== "remove" && key !== "set" && key !== "append") throw new ConfigError(`${where}: unknown key "${key}"`);
  }
  const out: HeaderRules = {};
  if (src.remove !== undefined) {
    if (!Array.isArray(src.remove)) throw new ConfigError(`${where}.remove: must be an array of header names`);
    out.remove = src.remove.map((n) => checkName(n, `${where}.remove`));
  }
  for (const key of ["set", "append"] as const) {
    const v = src[key];
    if (v === undefined) continue;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(`${where}.${key}: must be an object`);
    const rec: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(v as Record<string, unknown>)) {
      checkName(name, `${where}.${key}`);
      if (key === "append" && Array.isArray(value)) rec[name] = value.map((x) => checkValue(x, `${where}.${key}.${name}`));
      else rec[name] = checkValue(value, `${where}.${key}.${name}`);
    }
    if (key === "set") out.set = rec as Record<string, string>;
    else out.append = rec;
  }
  return out;
}

/**
 * Validates a `{ request, response }` pair; any other key is an error (rules such as `set` go
 * under `request` or `response`) unless listed in `alsoAllowed`, which the caller checks.
 */
export function validateRuleSet(input: unknown, where: string, alsoAllowed: readonly string[] = []): HeaderRuleSet {
  if (input === undefined) return {};
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw new ConfigError(`${where}: must be an object`);
  const src = input as Record<string, unknown>;
  for (const key of Object.keys(src)) {
    if (key === "request" || key === "response" || alsoAllowed.includes(key)) continue;
    const hint = key === "remove" || key === "set" || key === "append" ? ` (put "${key}" under "request" or "response")` : "";
    throw new ConfigError(`${where}: unknown key "${key}"${hint}`);
  }
  const out: HeaderRuleSet = {};
  if (src.request !== undefined) out.request = validateRules(src.request, `${where}.request`);
  if (src.response !== undefined) out.response = validateRules(src.response, `${where}.response`);
  return out;
}

/** Applies rules in place: remove, then set, then append. */
export function applyRules(headers: HeaderPairs, rules: HeaderRules | undefined): void {
  if (!rules) return;
  if (rules.remove) for (const name of rules.remove) removeHeader(headers, name);
  if (rules.set) for (const [name, value] of Object.entries(rules.set)) setHeader(headers, name, value);
  if (rules.append) {
    for (const [name, value] of Object.entries(rules.append)) {
      if (Array.isArray(value)) for (const v of value) appendHeader(headers, name, v);
      else appendHeader(headers, name, value);
    }
  }
}

export function isEmptyRules(rules: HeaderRules | undefined): boolean {
  return !rules || (!rules.remove?.length && !rules.set && !rules.append);
}
