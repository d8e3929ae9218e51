import { once } from "node:events";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";

export interface TestServer {
  server: Server;
  port: number;
  /** every socket the server accepted, in order */
  sockets: Socket[];
  /** connections accepted so far */
  readonly accepted: number;
  close(): Promise<void>;
}

/** Starts a TCP server on 127.0.0.1:0 with `onSocket` per connection. */
export async function startTcpServer(onSocket: (socket: Socket) => void, opts: { allowHalfOpen?: boolean } = {}): Promise<TestServer> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, (s) => {
    s.on("error", () => {});
    sockets.push(s);
    onSocket(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    sockets,
    get accepted() {
      return sockets.length;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** An echo server: writes back every byte; half-close aware (ends after the client ends). */
export function startEchoServer(): Promise<TestServer> {
  return startTcpServer((s) => s.pipe(s), { allowHalfOpen: true });
}

/**
 * A port on 127.0.0.1 where connections are refused, and stay refused while other tests bind
 * port 0: port 1 (privileged, outside the kernel's ephemeral range, nothing listens there), if a
 * connect to it is refused. Otherwise a port bound once and closed — which a later listen(0) can
 * be handed again (seen in a 5,000-case TCP fuzz campaign: a "refused" upstream turned live).
 */
export async function closedPort(): Promise<number> {
  if (await refused(1)) return 1;
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ port, host: "127.0.0.1" });
    c.once("connect", () => (c.destroy(), resolve(false)));
    c.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

/** Connects to 127.0.0.1:port and resolves once connected. */
export async function connectTo(port: number, host = "127.0.0.1", opts: { allowHalfOpen?: boolean } = {}): Promise<Socket> {
  const s = connect({ port, host, allowHalfOpen: opts.allowHalfOpen ?? false });
  s.on("error", () => {});
  await once(s, "connect");
  return s;
}

/** Reads until the socket ends (or closes); resolves with everything received. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    const done = () => resolve(Buffer.concat(chunks));
    socket.once("end", done);
    socket.once("close", done);
  });
}

/** Reads until at least `n` bytes arrived. */
export function readBytes(socket: Socket, n: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const t = setTimeout(() => finish(new Error(`timed out after ${got}/${n} bytes`)), timeoutMs);
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) finish();
    };
    const onClose = () => finish(new Error(`closed after ${got}/${n} bytes`));
    function finish(err?: Error) {
      clearTimeout(t);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    }
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/** Resolves when the socket closes, rejects after timeoutMs. */
export function waitClose(socket: Socket, timeoutMs = 5000): Promise<void> {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("socket did not close in time")), timeoutMs);
    socket.once("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
