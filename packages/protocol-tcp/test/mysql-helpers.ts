import mysql from "mysql2/promise";
import type { ListenerConfig, ProxyPlugin, RouteConfig } from "@switchyard/core";
import { MysqlProtocol, type MysqlOptions } from "@switchyard/protocol-tcp";
import { expectNoActiveConnections, startProxy, type StartedProxy } from "@switchyard/test-utils";

/** The MariaDB server of this machine (root with an empty password). */
export const MY = { host: "127.0.0.1", port: 3306, user: "root", password: "" } as const;
export const MY_TARGET = `${MY.host}:${MY.port}`;

/** Runs statements as root, directly against the server. */
export async function myAdmin(...sql: string[]): Promise<void> {
  const c = await mysql.createConnection({ ...MY });
  try {
    for (const s of sql) await c.query(s);
  } finally {
    await c.end();
  }
}

export interface MyEnv extends StartedProxy {
  close(): Promise<void>;
}

/** A proxy with one "mysql" listener named "my" and `routes`. */
export async function startMyProxy(
  routes: RouteConfig[],
  listener: Partial<ListenerConfig> = {},
  options: MysqlOptions = {},
  plugins: ProxyPlugin[] = [],
): Promise<MyEnv> {
  const started = await startProxy({
    listeners: [{ name: "my", protocol: "mysql", port: 0, ...listener }],
    routes,
    plugins: [new MysqlProtocol(options), ...plugins],
  });
  return {
    ...started,
    async close() {
      try {
        await expectNoActiveConnections(started.proxy);
      } finally {
        await started.proxy.close({ timeout: 100 });
      }
    },
  };
}

/** A mysql2 connection through the proxy. */
export function myThrough(port: number, config: mysql.ConnectionOptions = {}): Promise<mysql.Connection> {
  return mysql.createConnection({ host: "127.0.0.1", port, connectTimeout: 10_000, ...config });
}

/** The error a connect attempt fails with (undefined if it succeeds; the connection is closed). */
export async function connectError(port: number, config: mysql.ConnectionOptions): Promise<(Error & { errno?: number; sqlState?: string }) | undefined> {
  try {
    const c = await myThrough(port, config);
    await c.end();
    return undefined;
  } catch (err) {
    return err as Error & { errno?: number; sqlState?: string };
  }
}
