import { ConfigError } from "@switchyard/core";

/**
 * A per-route rewrite of what the client asked for at startup, applied to what the backend
 * sees (routing uses the client's values): `{ database: "app" }` sends a client that connected
 * to the virtual database `tenant_7` to the shared database `app`.
 */
export interface StartupRewrite {
  /** database name the backend gets */
  readonly database?: string;
  /** user name the backend gets (authentication is then that user's) */
  readonly user?: string;
}

const KEYS = new Set(["database", "user"]);

/** Throws ConfigError unless `value` is a valid StartupRewrite; `where` starts the message. */
export function checkStartupRewrite(value: unknown, where: string): StartupRewrite | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where} must be an object like { database: "app" }`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (!KEYS.has(k)) throw new ConfigError(`${where}: unknown key "${k}" (known: database, user)`);
    if (typeof v !== "string" || v === "" || v.includes("\0")) {
      throw new ConfigError(`${where}.${k} must be a non-empty string without NUL`);
    }
  }
  return value as StartupRewrite;
}
