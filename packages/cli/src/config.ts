import type { ListenerConfig, ProxyPlugin, RouteConfig, Timeouts, VerifyClientMode } from "@switchyard/core";

/**
 * A listener protocol: core's "tcp", one the command loads itself (`PROTOCOLS`: http, postgres,
 * mysql), or any name a package in `plugins` registers.
 */
export type ProtocolName = "tcp" | "http" | "postgres" | "mysql" | (string & {});

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** PEM material: a file path (relative to the config file), inline PEM text, or a Buffer (ESM configs). */
export type PemSource = string | Buffer;

export interface TlsEntry {
  cert: PemSource;
  key: PemSource;
  ca?: PemSource;
  /** host glob → its own certificate, chosen by SNI */
  sni?: Record<string, { cert: PemSource; key: PemSource }>;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
  /** lowest TLS version accepted (core's default "TLSv1.2") */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list (core's default: AEAD suites with forward secrecy, no static RSA) */
  ciphers?: string;
  /** prefer the listener's cipher order to the client's (default false) */
  honorCipherOrder?: boolean;
  /** client certificates: "required" | "optional" | "optional-no-ca" (core's VerifyClientMode) */
  verifyClient?: VerifyClientMode;
  /** certificate revocation list (file or PEM), re-read on SIGHUP with the certificates */
  crl?: PemSource;
}

/** A listener as written in a config file: core's ListenerConfig with TLS material as files. */
export type ListenerEntry = Omit<ListenerConfig, "protocol" | "tls"> & { protocol: ProtocolName; tls?: TlsEntry };

/** A route as written in a config file: exactly core's RouteConfig. */
export type RouteEntry = RouteConfig;

/** `{ use, options }` (any config format) or, in an ES module config, a plugin instance. */
export type PluginEntry = { use: string; options?: unknown } | ProxyPlugin;

export interface SwitchyardConfig {
  listeners: ListenerEntry[];
  routes?: RouteEntry[];
  plugins?: PluginEntry[];
  /**
   * options given to the constructor of a protocol the command loads itself, e.g.
   * `{ http: { maxHeaderSize: 16384 } }` (a protocol package named in `plugins` takes its
   * options there)
   */
  protocols?: Partial<Record<ProtocolName, Record<string, unknown>>>;
  /** proxy-wide phase deadlines in ms (handshake, connect, idle, lifetime) */
  timeouts?: Partial<Timeouts>;
  /** how long SIGTERM/SIGINT lets open connections finish, in ms (default 10000) */
  shutdownTimeout?: number;
  log?: { level?: LogLevel };
}

/**
 * Identity function that gives an ES module config its types:
 *
 * ```js
 * import { defineConfig } from "@switchyard/cli";
 * export default defineConfig({ listeners: [{ name: "db", protocol: "tcp", port: 6432 }], routes: [...] });
 * ```
 */
export function defineConfig(config: SwitchyardConfig): SwitchyardConfig {
  return config;
}
