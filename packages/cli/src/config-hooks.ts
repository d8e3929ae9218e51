/**
 * Module resolve hook used while loading an ES module config: `import { defineConfig } from
 * "@switchyard/cli"` (or any `@switchyard/*` package) falls back to the copy the running command
 * uses when the config file's own directory cannot resolve it — so a config works with a global
 * install, or outside any project.
 */
interface ResolveContext {
  parentURL?: string;
}
interface ResolveResult {
  url: string;
  shortCircuit?: boolean;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<ResolveResult>;

export async function resolve(specifier: string, context: ResolveContext, nextResolve: NextResolve): Promise<ResolveResult> {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (!specifier.startsWith("@switchyard/") || (err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
    // resolve it as if this module (inside the running @switchyard/cli) imported it
    return nextResolve(specifier, { ...context, parentURL: import.meta.url });
  }
}
