/**
 * Which package provides each listener protocol. "tcp" is built into @switchyard/core; the
 * others are imported lazily, only when a listener names them, so a missing package is a clear
 * config problem rather than a crash. Add a row here when a protocol package ships.
 */
import type { ProxyPlugin } from "@switchyard/core";
import { importModule, ModuleNotFound } from "./plugins.js";

export interface ProtocolSource {
  /** npm package that provides the protocol */
  readonly package: string;
  /** the ProxyPlugin class it exports, constructed as `new C(options)` */
  readonly export: string;
}

export const PROTOCOLS: Readonly<Record<string, ProtocolSource | null>> = Object.freeze({
  tcp: null,
  http: { package: "@switchyard/protocol-http", export: "HttpProtocol" },
  postgres: { package: "@switchyard/protocol-tcp", export: "PostgresProtocol" },
  mysql: { package: "@switchyard/protocol-tcp", export: "MysqlProtocol" },
  smtp: { package: "@switchyard/protocol-smtp", export: "SmtpProtocol" },
});

export type ProtocolClass = new (options?: unknown) => ProxyPlugin;

/**
 * Loads the class providing `protocol` (undefined for built-in tcp). Throws an Error whose
 * message is ready to show after the field path.
 */
export async function loadProtocol(protocol: string, baseDir: string | undefined): Promise<ProtocolClass | undefined> {
  if (!Object.hasOwn(PROTOCOLS, protocol)) throw new Error(`unknown protocol "${protocol}"`);
  const source = PROTOCOLS[protocol];
  if (source === undefined) throw new Error(`unknown protocol "${protocol}"`);
  if (source === null) return undefined;
  let ns: Record<string, unknown>;
  try {
    ns = await importModule(source.package, baseDir);
  } catch (err) {
    if (err instanceof ModuleNotFound) {
      throw new Error(`protocol "${protocol}" is not available: install ${source.package}`);
    }
    throw new Error(`protocol "${protocol}": ${source.package} failed to load: ${(err as Error).message}`);
  }
  const C = ns[source.export];
  if (typeof C !== "function") {
    throw new Error(`protocol "${protocol}" is not available: ${source.package} does not export ${source.export} (upgrade it)`);
  }
  return C as ProtocolClass;
}
