/**
 * Reads a config file: JSON (.json), YAML (.yaml/.yml) or an ES module (.mjs/.js) whose default
 * export is the config (usually `defineConfig({...})`) or a function returning it.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { register } from "node:module";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parse as parseYaml } from "yaml";

/** The file could not be read or parsed; `message` is ready to print. */
export class ConfigLoadError extends Error {
  override name = "ConfigLoadError";
}

const FORMATS: Readonly<Record<string, "json" | "yaml" | "esm">> = {
  ".json": "json",
  ".yaml": "yaml",
  ".yml": "yaml",
  ".mjs": "esm",
  ".js": "esm",
};

let generation = 0;

/** Loads and parses `file`; the result is unvalidated. Throws `ConfigLoadError`. */
export async function loadConfigFile(file: string): Promise<unknown> {
  const path = resolve(file);
  const format = FORMATS[extname(path).toLowerCase()];
  if (format === undefined) {
    throw new ConfigLoadError(`${file}: unsupported config format (use .json, .yaml, .yml, .mjs or .js)`);
  }
  if (format === "esm") return loadModule(path, file);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigLoadError(`${file}: cannot read: ${(err as Error).message}`);
  }
  // editors on Windows save UTF-8 with a byte-order mark; JSON.parse rejects it (the YAML parser skips it)
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return format === "json" ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const kind = format === "json" ? "JSON" : "YAML";
    throw new ConfigLoadError(`${file}: invalid ${kind}: ${parseErrorText((err as Error).message)}`);
  }
}

/**
 * The parser's whole message. The YAML parser's ends with the offending line and a caret under
 * the column ("… at line 3, column 1:", a blank line, the line, "^"): those lines are kept,
 * indented, without the blank ones.
 */
function parseErrorText(message: string): string {
  const [first = "", ...rest] = message.trimEnd().split("\n");
  const context = rest.filter((l) => l.trim() !== "").map((l) => `  ${l.trimEnd()}`);
  return [first, ...context].join("\n");
}

let hooksRegistered = false;

async function loadModule(path: string, file: string): Promise<unknown> {
  // the file itself first: a module it imports that is missing is not "cannot read" of the config
  try {
    await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigLoadError(`${file}: cannot read: ${code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  if (!hooksRegistered) {
    register("./config-hooks.js", import.meta.url);
    hooksRegistered = true;
  }
  // a fresh URL each time so a reload (SIGHUP) sees the edited file, not the module cache
  const url = `${pathToFileURL(path).href}?generation=${++generation}`;
  let ns: Record<string, unknown>;
  try {
    ns = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    // the file itself was removed since the check above
    if (!existsSync(path)) throw new ConfigLoadError(`${file}: cannot read: no such file`);
    throw new ConfigLoadError(`${file}: failed to load: ${(err as Error).message}`);
  }
  if (!("default" in ns)) throw new ConfigLoadError(`${file}: the module has no default export (export default defineConfig({...}))`);
  let config = ns.default;
  if (typeof config === "function") {
    try {
      config = await (config as () => unknown)();
    } catch (err) {
      throw new ConfigLoadError(`${file}: the default-exported function failed: ${(err as Error).message}`);
    }
  }
  return config;
}
