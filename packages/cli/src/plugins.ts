/**
 * Loading plugin modules named in a config file.
 *
 * `use` is a package name (resolved from the config file's directory first, then from the
 * CLI's own dependencies) or a path relative to the config file. The plugin class is the
 * module's default export when that is a class, otherwise the single exported class whose
 * name ends in "Plugin", otherwise (a protocol package) the single one whose name ends in
 * "Protocol". It is constructed as `new C(options)`.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { ProxyPlugin } from "@switchyard/core";

export type PluginClass = new (options?: unknown) => ProxyPlugin;

/** Thrown when a module specifier cannot be resolved at all. */
export class ModuleNotFound extends Error {
  override name = "ModuleNotFound";
}

function isPathSpecifier(spec: string): boolean {
  return spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("file:") || isAbsolute(spec);
}

function notFound(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED";
}

/** Resolves `spec` to a URL: paths against `baseDir`, packages from `baseDir` then from the CLI. */
export function resolveModule(spec: string, baseDir: string | undefined): string {
  // a relative file: URL ("file:x.mjs", "file:./x.mjs") is relative to the config file too
  if (spec.startsWith("file:")) return new URL(spec, pathToFileURL(`${baseDir ?? process.cwd()}/`)).href;
  if (isPathSpecifier(spec)) return pathToFileURL(resolve(baseDir ?? process.cwd(), spec)).href;
  if (baseDir !== undefined) {
    try {
      return pathToFileURL(createRequire(join(baseDir, "__switchyard__.js")).resolve(spec)).href;
    } catch (err) {
      if (!notFound(err)) throw err;
    }
  }
  try {
    return import.meta.resolve(spec);
  } catch (err) {
    if (notFound(err)) throw new ModuleNotFound(`cannot resolve "${spec}"${baseDir ? ` from ${baseDir}` : ""}`);
    throw err;
  }
}

/** Imports a module by specifier (see `resolveModule`); `ModuleNotFound` when it does not exist. */
export async function importModule(spec: string, baseDir: string | undefined): Promise<Record<string, unknown>> {
  const url = resolveModule(spec, baseDir);
  if (url.startsWith("file:") && !existsSync(fileURLToPath(url))) {
    throw new ModuleNotFound(`cannot resolve "${spec}": no such file ${fileURLToPath(url)}`);
  }
  return (await import(url)) as Record<string, unknown>;
}

function isClass(v: unknown): v is PluginClass {
  return typeof v === "function" && /^class[\s{]/.test(Function.prototype.toString.call(v));
}

/** Applies the plugin-loading rule to a module namespace; throws with a readable message. */
export function pickPluginClass(ns: Record<string, unknown>, spec: string): PluginClass {
  if (isClass(ns.default)) return ns.default;
  const named = (suffix: string) => {
    const found = new Set<PluginClass>();
    for (const [key, v] of Object.entries(ns)) {
      if (key !== "default" && isClass(v) && (key.endsWith(suffix) || v.name.endsWith(suffix))) found.add(v);
    }
    return [...found];
  };
  let list = named("Plugin");
  if (list.length === 0) list = named("Protocol");
  if (list.length === 1) return list[0] as PluginClass;
  if (list.length === 0) {
    throw new Error(`"${spec}" exports no plugin class (default-export a class, or export one class named *Plugin or *Protocol)`);
  }
  throw new Error(
    `"${spec}" exports several plugin classes (${list.map((c) => c.name).join(", ")}): default-export the one to use`,
  );
}

/** Loads the plugin class for `use`; errors carry messages ready to show after the field path. */
export async function loadPluginClass(use: string, baseDir: string | undefined): Promise<PluginClass> {
  let ns: Record<string, unknown>;
  try {
    ns = await importModule(use, baseDir);
  } catch (err) {
    if (err instanceof ModuleNotFound) throw err;
    throw new Error(`"${use}" failed to load: ${(err as Error).message}`);
  }
  return pickPluginClass(ns, use);
}

/** Constructs a plugin and checks it has the plugin shape. */
export function instantiate(C: PluginClass, options: unknown, what: string): ProxyPlugin {
  const plugin = options === undefined ? new C() : new C(options);
  if (typeof plugin?.apply !== "function" || typeof plugin.name !== "string") {
    throw new Error(`${what}: ${C.name} is not a plugin (it needs a name and an apply(proxy) method)`);
  }
  return plugin;
}
