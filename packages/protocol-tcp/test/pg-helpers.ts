import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { once } from "node:events";
import pg from "pg";
import type { ListenerConfig, ProxyPlugin, RouteConfig } from "@switchyard/core";
import { PostgresProtocol, type PostgresOptions } from "@switchyard/protocol-tcp";
import { expectNoActiveConnections, startProxy, type StartedProxy } from "@switchyard/test-utils";

/** The PostgreSQL server of this machine (trust authentication on 127.0.0.1). */
export const PG = { host: "127.0.0.1", port: 5432, user: "postgres", database: "test" } as const;
export const PG_TARGET = `${PG.host}:${PG.port}`;

/** Runs one statement as the admin user, directly against the server. */
export async function pgAdmin(sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ ...PG });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

export interface PgEnv extends StartedProxy {
  protocol: PostgresProtocol;
  close(): Promise<void>;
}

/** A proxy with one "postgres" listener named "pg" (plus `extra` listeners) and `routes`. */
export async function startPgProxy(
  routes: RouteConfig[],
  listener: Partial<ListenerConfig> = {},
  options: PostgresOptions = {},
  plugins: ProxyPlugin[] = [],
): Promise<PgEnv> {
  const protocol = new PostgresProtocol(options);
  const started = await startProxy({
    listeners: [{ name: "pg", protocol: "postgres", port: 0, ...listener }],
    routes,
    plugins: [protocol, ...plugins],
  });
  return {
    ...started,
    protocol,
    async close() {
      try {
        await expectNoActiveConnections(started.proxy);
      } finally {
        await started.proxy.close({ timeout: 100 });
      }
    },
  };
}

/** A pg client through the proxy. */
export function pgThrough(port: number, config: pg.ClientConfig = {}): pg.Client {
  const c = new pg.Client({ host: "127.0.0.1", port, user: PG.user, database: PG.database, ...config });
  c.on("error", () => {});
  return c;
}

/** A plain TCP forwarder to `target` that counts the connections it carried (a second "server"). */
export interface Forwarder {
  port: number;
  accepted: number;
  close(): Promise<void>;
}

export async function startForwarder(targetPort: number, targetHost = "127.0.0.1"): Promise<Forwarder> {
  const sockets = new Set<Socket>();
  const state = { accepted: 0 };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    state.accepted++;
    const up = connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    for (const s of [client, up]) {
      sockets.add(s);
      s.on("error", () => {
        client.destroy();
        up.destroy();
      });
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(up);
    up.pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return state.accepted;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Sends raw bytes to a port and collects everything until the peer closes. */
export async function rawExchange(port: number, bytes: Buffer, timeoutMs = 5000): Promise<Buffer> {
  const s = connect({ host: "127.0.0.1", port });
  s.on("error", () => {});
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  await once(s, "connect");
  s.write(bytes);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("peer did not close"));
    }, timeoutMs);
    s.on("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
  return Buffer.concat(chunks);
}

/** Fields of an ErrorResponse ('E'): { C: sqlstate, M: message, ... }. */
export function errorFields(bytes: Buffer): Record<string, string> {
  if (bytes[0] !== 0x45) throw new Error(`not an ErrorResponse: ${bytes.subarray(0, 16).toString("hex")}`);
  const length = bytes.readInt32BE(1);
  const out: Record<string, string> = {};
  let at = 5;
  while (at < 1 + length && bytes[at] !== 0) {
    const end = bytes.indexOf(0, at + 1);
    out[String.fromCharCode(bytes[at]!)] = bytes.toString("utf8", at + 1, end);
    at = end + 1;
  }
  return out;
}

/** A startup packet (protocol 3.0) with the given parameters. */
export function startupPacket(params: Record<string, string> | Array<[string, string]>): Buffer {
  const pairs = Array.isArray(params) ? params : Object.entries(params);
  const body = Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join("") + "\0");
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(196608, 4);
  body.copy(out, 8);
  return out;
}
