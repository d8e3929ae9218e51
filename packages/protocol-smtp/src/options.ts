/**
 * Options of the SMTP protocol: defaults given to `new SmtpProtocol(options)`, overridden per
 * listener (`ListenerConfig.options`). Every name is documented in the README.
 */
import { hostname as osHostname } from "node:os";
import { ConfigError, unknownOptionMessage } from "@switchyard/core";
import type { BareNewlinePolicy } from "./data-reader.js";

/** What the proxy routes a session by. */
export type SmtpRouteBy = "ehlo" | "rcptDomain" | "authUser";

export interface SmtpListenerOptions {
  /** name in the greeting and replies (default: the machine's host name) */
  hostname?: string;
  /** routing key (default "ehlo"): `match.ehlo`, `match.rcptDomain` or `match.authUser` */
  routeBy?: SmtpRouteBy;
  /**
   * EHLO keywords the proxy answers with itself before a backend is chosen (routeBy
   * "rcptDomain" / "authUser"; default PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8).
   * STARTTLS (listener `tls`), SIZE (`maxMessageSize`) and AUTH (authUser) are added by the proxy.
   */
  capabilities?: string[];
  /** largest message in bytes, announced in SIZE and enforced (552); 0: the backend's limit only (default 0) */
  maxMessageSize?: number;
  /** a bare LF or CR in DATA: "reject" the message (554, default) or "normalize" it to CRLF */
  bareNewline?: BareNewlinePolicy;
  /** no route for the key: "reject" with 554 / 550 (default), or "defer" with 451 */
  noRoute?: "reject" | "defer";
  /** tell the backend who the client is: XCLIENT, else XFORWARD, when advertised ("auto", default), one of them only, or "none" */
  forwardClient?: "auto" | "xclient" | "xforward" | "none";
  /** waiting for the client's next command, ms (RFC 5321 §4.5.3.2.7: 5 min; default 300000) */
  commandTimeout?: number;
  /** waiting for the next chunk of message data, ms (default 180000) */
  dataTimeout?: number;
  /** waiting for a backend reply, ms (default 300000) */
  replyTimeout?: number;
  /** waiting for the backend's reply to the end of data, ms (RFC 5321 §4.5.3.2.6: 10 min; default 600000) */
  dataEndTimeout?: number;
  /** waiting for the taps of one SMTP hook, ms (default 30000) → 451 4.3.0 */
  hookTimeout?: number;
  /** bad commands before the proxy closes with 421 (default 20) */
  maxErrors?: number;
}

export interface ResolvedSmtpOptions {
  readonly hostname: string;
  readonly routeBy: SmtpRouteBy;
  readonly capabilities: readonly string[];
  readonly maxMessageSize: number;
  readonly bareNewline: BareNewlinePolicy;
  readonly noRoute: "reject" | "defer";
  readonly forwardClient: "auto" | "xclient" | "xforward" | "none";
  readonly commandTimeout: number;
  readonly dataTimeout: number;
  readonly replyTimeout: number;
  readonly dataEndTimeout: number;
  readonly hookTimeout: number;
  readonly maxErrors: number;
}

const DEFAULTS: Omit<ResolvedSmtpOptions, "hostname"> = {
  routeBy: "ehlo",
  capabilities: ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"],
  maxMessageSize: 0,
  bareNewline: "reject",
  noRoute: "reject",
  forwardClient: "auto",
  commandTimeout: 300_000,
  dataTimeout: 180_000,
  replyTimeout: 300_000,
  dataEndTimeout: 600_000,
  hookTimeout: 30_000,
  maxErrors: 20,
};

const KEYS = [
  "hostname",
  "routeBy",
  "capabilities",
  "maxMessageSize",
  "bareNewline",
  "noRoute",
  "forwardClient",
  "commandTimeout",
  "dataTimeout",
  "replyTimeout",
  "dataEndTimeout",
  "hookTimeout",
  "maxErrors",
] as const;

const CHOICES: Partial<Record<(typeof KEYS)[number], readonly string[]>> = {
  routeBy: ["ehlo", "rcptDomain", "authUser"],
  bareNewline: ["reject", "normalize"],
  noRoute: ["reject", "defer"],
  forwardClient: ["auto", "xclient", "xforward", "none"],
};

const NUMBERS = new Set(["maxMessageSize", "commandTimeout", "dataTimeout", "replyTimeout", "dataEndTimeout", "hookTimeout", "maxErrors"]);

/** Merges defaults, constructor options and listener options; throws ConfigError starting with `where`. */
export function resolveOptions(where: string, ...layers: Array<Readonly<Record<string, unknown>> | undefined>): ResolvedSmtpOptions {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (layer === undefined) continue;
    if (typeof layer !== "object" || layer === null) throw new ConfigError(`${where}: must be an object`);
    for (const [k, v] of Object.entries(layer)) {
      if (!(KEYS as readonly string[]).includes(k)) throw new ConfigError(`${where}: ${unknownOptionMessage(k, KEYS)}`);
      if (v !== undefined) merged[k] = v;
    }
  }
  for (const [k, v] of Object.entries(merged)) {
    const choices = CHOICES[k as keyof typeof CHOICES];
    if (choices && !choices.includes(v as string)) {
      throw new ConfigError(`${where}: ${k} must be one of ${choices.map((c) => `"${c}"`).join(", ")}`);
    }
    if (NUMBERS.has(k) && (typeof v !== "number" || !Number.isInteger(v) || v < 0)) {
      throw new ConfigError(`${where}: ${k} must be a non-negative integer`);
    }
    if (k === "hostname" && (typeof v !== "string" || !/^[^\s\x00-\x1f]+$/.test(v))) {
      throw new ConfigError(`${where}: hostname must be a non-empty string without spaces`);
    }
    if (k === "capabilities" && (!Array.isArray(v) || v.some((c) => typeof c !== "string" || /[\r\n]/.test(c)))) {
      throw new ConfigError(`${where}: capabilities must be a list of EHLO keywords`);
    }
  }
  return Object.freeze({ ...DEFAULTS, hostname: osHostname() || "localhost", ...merged }) as ResolvedSmtpOptions;
}

/**
 * Route option `backendStartTls`: STARTTLS toward the backends of a route. The TLS settings are
 * the target's `tls` keys (`ca`, `servername`, `cert` / `key`, `rejectUnauthorized`), as for
 * every protocol; with `backendStartTls` they apply after the backend's STARTTLS instead of from
 * the first byte.
 */
export interface BackendStartTlsOptions {
  /** refuse a backend that does not offer STARTTLS or whose handshake fails (default true) */
  required?: boolean;
}

/** Per-route options (`RouteConfig.options`) read by SmtpProtocol. */
export interface SmtpRouteOptions {
  /** `true` or settings: upgrade each backend session with STARTTLS before introducing the client */
  backendStartTls?: boolean | BackendStartTlsOptions;
}

export const ROUTE_KEYS = ["backendStartTls"] as const;

/** Throws ConfigError for a bad `backendStartTls`. */
export function checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
  const v = options.backendStartTls;
  if (v === undefined || typeof v === "boolean") return;
  if (typeof v !== "object" || v === null) throw new ConfigError(`${where}: backendStartTls must be a boolean or an object`);
  for (const [k, x] of Object.entries(v)) {
    if (k === "required") {
      if (typeof x !== "boolean") throw new ConfigError(`${where}: backendStartTls.required must be a boolean`);
    } else if (k === "ca" || k === "servername" || k === "rejectUnauthorized") {
      throw new ConfigError(`${where}: backendStartTls.${k}: TLS settings are the target's tls keys (targets: [{ host, port, tls: { ${k} } }])`);
    } else throw new ConfigError(`${where}: backendStartTls: ${unknownOptionMessage(k, ["required"])}`);
  }
}

/** The route's backendStartTls settings, or undefined when off. */
export function backendStartTlsOf(options: Readonly<Record<string, unknown>>): BackendStartTlsOptions | undefined {
  const v = options.backendStartTls;
  if (v === undefined || v === false) return undefined;
  return v === true ? {} : (v as BackendStartTlsOptions);
}
