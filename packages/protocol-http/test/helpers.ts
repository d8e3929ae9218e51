import { once } from "node:events";
import http from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import type { ListenerTls, Logger, ProxyPlugin, RouteConfig } from "@switchyard/core";
import { HttpProtocol, type HttpListenerOptions } from "@switchyard/protocol-http";
import {
  expectNoActiveConnections,
  startBlackhole,
  startProxy,
  startTcpServer,
  type Blackhole,
  type StartedProxy,
  type TestServer,
  waitFor,
} from "@switchyard/test-utils";

interface Closable {
  close(): Promise<void>;
}
const toClose: Closable[] = [];
let inTest = false;

/**
 * Registers something made during a test (or its beforeEach) to close after it; everything
 * registered is closed in reverse order of creation (proxy before its backends), once, by the
 * root hooks below. Backends, proxies, TCP servers and blackholes made through these helpers
 * register themselves; fixtures made in a describe's `before` are left to its `after`.
 */
export function closeAfterTest<T extends Closable>(thing: T): T {
  if (inTest) toClose.push(thing);
  return thing;
}

beforeEach(() => {
  inTest = true;
});

afterEach(async function () {
  inTest = false;
  // everything is closed even when a check fails; the first failure fails the test that just
  // ran. Given to the hook's error() rather than thrown: mocha reports it against that test and
  // goes on, where a throwing root hook would stop the whole run
  let failure: unknown;
  for (const thing of toClose.splice(0).reverse()) {
    try {
      await thing.close();
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure !== undefined) (this.test as Mocha.Hook).error(failure);
});

/** Wraps close() so a test may close early and the root hook's second call is a no-op. */
function closeOnce(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= close());
}

export async function tcpServer(...args: Parameters<typeof startTcpServer>): Promise<TestServer> {
  const server = await startTcpServer(...args);
  server.close = closeOnce(server.close.bind(server));
  return closeAfterTest(server);
}

export async function blackhole(): Promise<Blackhole> {
  const hole = await startBlackhole();
  hole.close = closeOnce(hole.close.bind(hole));
  return closeAfterTest(hole);
}

export interface Backend {
  server: http.Server;
  port: number;
  /** TCP connections accepted */
  connections: number;
  /** requests seen, in order */
  requests: http.IncomingMessage[];
  close(): Promise<void>;
}

export async function startBackend(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Backend> {
  const server = http.createServer({ keepAliveTimeout: 10_000 }, (req, res) => {
    b.requests.push(req);
    handler(req, res);
  });
  const b: Backend = {
    server,
    port: 0,
    connections: 0,
    requests: [],
    close: closeOnce(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }),
  };
  server.on("connection", (s: Socket) => {
    b.connections++;
    s.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  b.port = (server.address() as AddressInfo).port;
  return closeAfterTest(b);
}

export interface Env {
  proxy: StartedProxy;
  protocol: HttpProtocol;
  port: number;
  close(): Promise<void>;
}

/** A proxy with one "web" http listener and the given routes. */
export async function startHttpProxy(
  routes: RouteConfig[],
  options: { listener?: HttpListenerOptions; defaults?: HttpListenerOptions; plugins?: ProxyPlugin[]; tls?: ListenerTls; logger?: Logger } = {},
): Promise<Env> {
  const protocol = new HttpProtocol(options.defaults ?? {});
  const listener = {
    name: "web",
    protocol: "http",
    port: 0,
    ...(options.listener ? { options: options.listener as Record<string, unknown> } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
  };
  const proxy = await startProxy({
    listeners: [listener],
    routes,
    plugins: [protocol, ...(options.plugins ?? [])],
    ...(options.logger ? { logger: options.logger } : {}),
  });
  return closeAfterTest({
    proxy,
    protocol,
    port: proxy.port(),
    close: closeOnce(async () => {
      // the check comes first: close() destroys whatever is left, so after it the count is
      // zero whatever the test leaked. Clients made through these helpers are gone by now
      // (registered after the proxy, they close before it); a connection the proxy still
      // holds is one it failed to release
      try {
        await expectNoActiveConnections(proxy.proxy, LEAK_WAIT_MS);
        await expectNoBusyUpstreams(protocol, proxy, LEAK_WAIT_MS);
      } finally {
        await proxy.proxy.close({ timeout: 2000 });
        protocol.close();
      }
    }),
  });
}

/**
 * Waits until no upstream socket is leased or waited for: with every client connection gone,
 * each pooled socket must be idle (or closed) and no request queued. A socket an exchange never
 * gave back would stay "busy" until proxy.close() destroyed it.
 */
async function expectNoBusyUpstreams(protocol: HttpProtocol, proxy: StartedProxy, timeoutMs: number): Promise<void> {
  const busy = () => protocol.poolStats(proxy.proxy).filter((p) => p.open !== p.idle || p.queued !== 0);
  try {
    await waitFor(() => busy().length === 0, timeoutMs, "upstream sockets to be idle");
  } catch {
    throw new Error(`upstream sockets still leased after the test: ${JSON.stringify(busy())}`);
  }
}

/** how long a test's proxy gets to release its connections once the test is over */
const LEAK_WAIT_MS = 3000;

/** Registers a client socket to destroy after the test, before the proxy it talks to is checked. */
function clientAfterTest(socket: Socket): Socket {
  closeAfterTest({
    close: async () => {
      if (socket.destroyed) return;
      socket.destroy();
      await once(socket, "close");
    },
  });
  return socket;
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** One request with Node's http client (a fresh connection, closed after). */
export function request(
  port: number,
  opts: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent } = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: opts.method ?? "GET", path: opts.path ?? "/", headers: opts.headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** Sends raw bytes, reads until the proxy closes (or `timeoutMs`), returns what came back. */
export function raw(port: number, data: string | Buffer | Array<string | Buffer>, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = clientAfterTest(connect({ port, host: "127.0.0.1" }));
    const chunks: Buffer[] = [];
    s.on("error", () => {});
    s.on("data", (c: Buffer) => chunks.push(c));
    const t = setTimeout(() => s.destroy(), timeoutMs);
    s.on("close", () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
    s.on("connect", () => {
      for (const d of Array.isArray(data) ? data : [data]) s.write(d);
    });
  });
}

/** Opens a raw connection and returns it with a helper collecting everything received. */
export async function rawSocket(
  port: number,
): Promise<{ socket: Socket; closed: Promise<void>; received(): string; waitFor(text: string | RegExp, ms?: number): Promise<string> }> {
  const socket = clientAfterTest(connect({ port, host: "127.0.0.1" }));
  socket.on("error", () => {});
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  await once(socket, "connect");
  let buf = "";
  socket.on("data", (c: Buffer) => (buf += c.toString("latin1")));
  return {
    socket,
    closed,
    received: () => buf,
    waitFor(text, ms = 3000) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + ms;
        const check = () => {
          if (typeof text === "string" ? buf.includes(text) : text.test(buf)) return resolve(buf);
          if (Date.now() > deadline || socket.destroyed) return reject(new Error(`did not receive ${String(text)}; got ${JSON.stringify(buf)}`));
          setTimeout(check, 5);
        };
        check();
      });
    },
  };
}

export function statusOf(rawResponse: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(rawResponse);
  return m ? +m[1]! : 0;
}
