// A small line protocol for tests of core's protocol extension points: the client sends one line
// of `name=value` pairs, which become the routing key; the proxy answers `ROUTE <route name>` or
// `NOROUTE`, then closes. Its refusals answer `REFUSED <kind>` (or hang, or fail, on request).
import type { Connection, MatchKeyKind, ProtocolHandler, Proxy, ProxyPlugin, Refusal, RouteKey } from "@switchyard/core";
import { ResolveError } from "@switchyard/core";

export interface LineProtocolOptions {
  name?: string;
  matchKeys?: Record<string, MatchKeyKind>;
  /** how `refuse` behaves: answer a line (default), never settle, throw, or not exist */
  refuse?: "line" | "hang" | "throw" | "none";
  tlsMode?: "accept" | "protocol";
}

export class LineProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name: string;
  readonly matchKeys: Readonly<Record<string, MatchKeyKind>>;
  readonly tlsMode: "accept" | "protocol";
  /** what refuse() was asked, in order */
  readonly refusals: Refusal[] = [];
  /** how many connections were still open when close() ran, per call */
  readonly closeCalls: number[] = [];
  declare refuse?: (conn: Connection, refusal: Refusal) => void | Promise<void>;
  #proxy: Proxy | undefined;

  constructor(options: LineProtocolOptions = {}) {
    this.name = options.name ?? "line";
    this.matchKeys = options.matchKeys ?? {};
    this.tlsMode = options.tlsMode ?? "accept";
    const mode = options.refuse ?? "line";
    if (mode !== "none") {
      this.refuse = (conn, refusal) => {
        this.refusals.push(refusal);
        if (mode === "throw") throw new Error("refuse failed on purpose");
        if (mode === "hang") return new Promise<void>(() => {});
        return new Promise<void>((resolve) => conn.socket.write(`REFUSED ${refusal.kind}\n`, () => resolve()));
      };
    }
  }

  apply(proxy: Proxy): void {
    this.#proxy = proxy;
    proxy.registerProtocol(this);
  }

  close(): void {
    this.closeCalls.push(this.#proxy?.connections.size ?? -1);
  }

  async handle(conn: Connection): Promise<void> {
    const line = await readLine(conn);
    if (line === undefined || conn.destroyed) return;
    const key: RouteKey = { listener: conn.listener.name, protocol: this.name, clientIp: conn.clientIp };
    for (const pair of line.split(" ")) {
      const eq = pair.indexOf("=");
      if (eq > 0) key[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    let answer: string;
    try {
      const match = conn.context.tryResolveSync(conn, key) ?? (await conn.context.resolve(conn, key));
      answer = `ROUTE ${match.route.name}`;
    } catch (err) {
      if (!(err instanceof ResolveError)) throw err;
      answer = "NOROUTE";
    }
    if (conn.destroyed) return;
    conn.socket.end(`${answer}\n`, () => conn.destroy("done"));
  }
}

/** The client's first line (at most 1 KiB); undefined when the connection ends first. */
function readLine(conn: Connection): Promise<string | undefined> {
  const socket = conn.socket;
  let buf = "";
  return new Promise((resolve) => {
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl >= 0) done(buf.slice(0, nl).replace(/\r$/, ""));
      else if (buf.length > 1024) {
        done(undefined);
        conn.destroy("protocol-error", new Error("line too long"));
      }
    };
    const done = (line: string | undefined) => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.pause();
      resolve(line);
    };
    socket.on("data", onData);
    // as real protocols do, the client's FIN before a full line ends the connection; during a
    // refusal (which ends our side first) the close must still count as the refusal
    const onEnd = () => {
      done(undefined);
      conn.destroy("client-closed");
    };
    socket.once("end", onEnd);
    conn.onDestroy(() => done(undefined));
  });
}
