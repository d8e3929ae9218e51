import { ConfigError } from "@switchyard/core";

/**
 * Per-route options of a database protocol (`options.postgres`, `options.mysql`).
 *
 * Startup rewrite: what the backend is told instead of what the client asked for (routing uses
 * the client's values): `{ database: "app" }` sends a client that connected to the virtual
 * database `tenant_7` to the shared database `app`.
 *
 * Backend TLS: `sslmode` is the switch: "require" encrypts the proxy's leg to the server
 * without checking its certificate (libpq's meaning); "verify-full" checks the chain and the
 * name; "disable" stays plaintext; absent, a target with `tls` means TLS (verified). The TLS
 * settings themselves (`ca`, `servername`, `cert` / `key`) are the target's `tls` keys, as for
 * every other protocol: `targets: [{ host, port, tls: { ca, servername } }]`.
 */
export interface DatabaseRouteOptions {
  /** database name the backend gets */
  readonly database?: string;
  /** user name the backend gets (authentication is then that user's) */
  readonly user?: string;
  /** TLS on the proxy's leg to the backend */
  readonly sslmode?: "disable" | "require" | "verify-full";
}

const REWRITE_KEYS = ["database", "user"];
const TLS_KEYS = ["sslmode"];
const SSLMODES = new Set(["disable", "require", "verify-full"]);

/**
 * Throws ConfigError unless `value` is valid route options; `where` starts the message.
 * `tls` says whether backend TLS keys are accepted.
 */
export function checkDatabaseRouteOptions(value: unknown, where: string, tls: boolean): DatabaseRouteOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where} must be an object like { database: "app" }`);
  }
  const known = tls ? [...REWRITE_KEYS, ...TLS_KEYS] : REWRITE_KEYS;
  for (const [k, v] of Object.entries(value)) {
    if (tls && (k === "ca" || k === "servername")) {
      throw new ConfigError(`${where}.${k}: backend TLS settings are the target's tls keys (targets: [{ host, port, tls: { ${k} } }]); sslmode stays here`);
    }
    if (!known.includes(k)) throw new ConfigError(`${where}: unknown key "${k}" (known: ${known.join(", ")})`);
    if (typeof v !== "string" || v === "" || v.includes("\0")) {
      throw new ConfigError(`${where}.${k} must be a non-empty string without NUL`);
    }
    if (k === "sslmode" && !SSLMODES.has(v)) throw new ConfigError(`${where}.sslmode must be "disable", "require" or "verify-full"`);
  }
  return value as DatabaseRouteOptions;
}
