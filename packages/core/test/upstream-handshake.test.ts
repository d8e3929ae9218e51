// The upstream handshake phase and upstream STARTTLS, through a small protocol that talks to a
// scripted backend before relaying: it sends "STARTTLS" (optionally) and "HELLO", reads up to the
// backend's "READY" line, answers "CONNECTED" to its client, then hands both sockets to the relay
// with whatever else it read from the backend. A failure of the phase answers "FAIL <code>".
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { expect } from "chai";
import { relay, UpstreamHandshake, type Connection, type ProtocolHandler, type Proxy, type ProxyPlugin, type TargetInput } from "@switchyard/core";
import { createTestCa, expectNoActiveConnections, readAll, startProxy, startTcpServer, waitFor, type TestCa, type TestServer } from "@switchyard/test-utils";

interface ScriptOptions {
  starttls?: boolean;
  handshakeMs?: number;
  /** read the backend up to its FIN before relaying (a backend that said all it had to say) */
  untilFin?: boolean;
  /** an 'error' listener the protocol itself keeps on the upstream through the relay */
  onUpstreamError?: (err: Error) => void;
}

class ScriptProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "script";
  readonly failures: string[] = [];
  readonly #o: ScriptOptions;
  constructor(options: ScriptOptions = {}) {
    this.#o = options;
  }
  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
  }
  async handle(conn: Connection): Promise<void> {
    const proxy = conn.context;
    const match = proxy.tryResolveSync(conn, { listener: conn.listener.name, protocol: this.name, clientIp: conn.clientIp })!;
    let connected;
    try {
      connected = await proxy.connectUpstream(conn, match, undefined, this.#o.starttls ? { tls: "starttls" } : {});
    } catch (err) {
      return conn.destroy("connect-failed", err);
    }
    const fail = (err: { code?: string }): void => {
      this.failures.push(String(err.code));
      conn.socket.end(`FAIL ${err.code}\n`, () => conn.destroy("upstream-error", err));
    };
    const phase = new UpstreamHandshake(conn, connected.socket, connected.target, { timeoutMs: this.#o.handshakeMs ?? 5000, onFailure: fail });
    try {
      if (this.#o.starttls) {
        phase.socket.write("STARTTLS\n");
        const answer = await readUntil(phase.socket, "OK\n");
        if (answer === undefined) return;
        await phase.upgrade();
      }
      phase.socket.write("HELLO\n");
      const got = await readUntil(phase.socket, "READY\n", this.#o.untilFin);
      if (got === undefined || phase.over) return;
      if (this.#o.onUpstreamError) phase.socket.on("error", this.#o.onUpstreamError);
      conn.socket.write("CONNECTED\n");
      const upstream = phase.finish();
      relay(conn, upstream, { idleMs: 10_000, upstreamHead: got.rest.length > 0 ? [got.rest] : undefined, upstreamEnded: got.ended });
    } catch (err) {
      if (!conn.destroyed) fail(err as { code?: string });
    }
  }
}

/**
 * Reads `socket` until `marker`; what follows it in the same reads is `rest`. `ended`: the peer's
 * FIN came before the reader stopped (with `untilEnd` it reads up to the FIN). Undefined when the
 * socket closed first.
 */
function readUntil(socket: Socket, marker: string, untilEnd = false): Promise<{ before: Buffer; rest: Buffer; ended: boolean } | undefined> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let found = -1;
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      found = buf.indexOf(marker);
      // keep reading within this tick: a FIN right behind the bytes is seen too
      if (found >= 0 && !untilEnd) setImmediate(() => done({ before: buf.subarray(0, found), rest: buf.subarray(found + marker.length), ended: false }));
    };
    const onEnd = (): void => done(found >= 0 ? { before: buf.subarray(0, found), rest: buf.subarray(found + marker.length), ended: true } : undefined);
    const onClose = (): void => done(undefined);
    let settled = false;
    function done(v: { before: Buffer; rest: Buffer; ended: boolean } | undefined): void {
      if (settled) return;
      settled = true;
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onClose);
      socket.pause();
      resolve(v);
    }
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onClose);
    socket.resume();
  });
}

/** A backend that answers "HELLO" with `answer(socket)`; before that, optional STARTTLS. */
function backend(onHello: (s: Socket) => void, tls?: { cert: string; key: string } | "hang"): Promise<TestServer> {
  return startTcpServer(
    (raw) => {
      let buf = "";
      let s: Socket = raw;
      const onData = (d: Buffer): void => {
        buf += d.toString("latin1");
        if (tls !== undefined && buf === "STARTTLS\n") {
          buf = "";
          raw.off("data", onData);
          raw.write("OK\n");
          if (tls === "hang") return;
          const secure = new TLSSocket(raw, { isServer: true, cert: tls.cert, key: tls.key });
          secure.on("error", () => {});
          s = secure;
          secure.on("data", onData);
        } else if (buf.endsWith("HELLO\n")) {
          s.off("data", onData);
          // a backend that closes its side after the proxy's FIN
          s.once("end", () => s.end());
          onHello(s);
        }
      };
      raw.on("data", onData);
    },
    { allowHalfOpen: true },
  );
}

/** every client socket a test opened, destroyed after each test (they are half-open aware) */
const clients: Socket[] = [];

async function clientOf(port: number): Promise<Socket> {
  const c = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  clients.push(c);
  c.on("error", () => {});
  await once(c, "connect");
  return c;
}

async function setup(protocol: ScriptProtocol, targets: TargetInput[], connectMs = 5000) {
  return startProxy({
    listeners: [{ name: "s", protocol: "script", port: 0 }],
    routes: [{ listener: "s", targets }],
    plugins: [protocol],
    timeouts: { connect: connectMs },
  });
}

describe("upstream handshake phase", () => {
  let server: TestServer | undefined;
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await stop?.();
    await server?.close();
    stop = server = undefined;
  });

  it("reports a backend reset during the handshake to the protocol at once", async () => {
    server = await backend((s) => s.resetAndDestroy());
    const protocol = new ScriptProtocol({ handshakeMs: 10_000 });
    const { proxy, port } = await setup(protocol, [`127.0.0.1:${server.port}`]);
    stop = () => proxy.close();
    const started = Date.now();
    const c = await clientOf(port());
    expect((await readAll(c)).toString()).to.equal("FAIL PRX_ERR_UPSTREAM_RESET\n");
    expect(Date.now() - started).to.be.below(5000);
    await expectNoActiveConnections(proxy);
  });

  it("fails the phase at its deadline when the backend stays silent", async () => {
    let backendSawEnd = false;
    server = await backend((s) => s.once("end", () => (backendSawEnd = true)));
    const protocol = new ScriptProtocol({ handshakeMs: 200 });
    const { proxy, port } = await setup(protocol, [`127.0.0.1:${server.port}`]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    expect((await readAll(c)).toString()).to.equal("FAIL PRX_ERR_UPSTREAM_TIMEOUT\n");
    await expectNoActiveConnections(proxy);
    await waitFor(() => backendSawEnd, 3000, "the proxy to close the backend connection");
  });

  it("delivers backend bytes read before the relay first, in order, then relays both ways", async () => {
    server = await backend((s) => {
      s.write("READY\nfirst-");
      setImmediate(() => s.write("second|"));
      s.on("data", (d: Buffer) => s.write(d));
    });
    const { proxy, port } = await setup(new ScriptProtocol(), [`127.0.0.1:${server.port}`]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString()));
    await waitFor(() => got.endsWith("|"), 3000, "bytes before the relay");
    c.end("ping");
    await waitFor(() => got.endsWith("ping"), 3000, "echo");
    expect(got).to.equal("CONNECTED\nfirst-second|ping");
    c.destroy();
    await expectNoActiveConnections(proxy);
  });

  it("passes on a backend FIN that came before the relay, and the client may still send", async () => {
    const received: string[] = [];
    server = await backend((s) => {
      s.on("data", (d: Buffer) => received.push(d.toString()));
      s.end("READY\nbye");
    });
    const { proxy, port } = await setup(new ScriptProtocol({ untilFin: true }), [`127.0.0.1:${server.port}`]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    const all = readAll(c);
    await once(c, "end");
    c.end("late");
    expect((await all).toString()).to.equal("CONNECTED\nbye");
    await waitFor(() => received.join("") === "late", 3000, "half-closed client's bytes reach the backend");
    await expectNoActiveConnections(proxy);
  });

  it("leaves a protocol's own upstream listeners in place (relay removes only its own)", async () => {
    const errors: Error[] = [];
    server = await backend((s) => {
      s.write("READY\n");
      setTimeout(() => s.resetAndDestroy(), 50);
    });
    const { proxy, port } = await setup(new ScriptProtocol({ onUpstreamError: (e) => errors.push(e) }), [`127.0.0.1:${server.port}`]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    await readAll(c);
    await expectNoActiveConnections(proxy);
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).to.deep.equal(["ECONNRESET"]);
  });
});

describe("upstream STARTTLS", () => {
  let ca: TestCa;
  let server: TestServer | undefined;
  let stop: (() => Promise<void>) | undefined;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await stop?.();
    await server?.close();
    stop = server = undefined;
  });

  const ready = (s: Socket): void => {
    s.write(`READY\n${s instanceof TLSSocket ? "tls" : "plain"}|`);
    s.on("data", (d: Buffer) => s.write(d));
  };

  it("upgrades after the plaintext preamble, verified with the target's ca and servername", async () => {
    server = await backend(ready, ca.issue({ commonName: "db.test" }));
    const protocol = new ScriptProtocol({ starttls: true });
    const { proxy, port } = await setup(protocol, [{ host: "127.0.0.1", port: server.port, tls: { ca: ca.cert, servername: "db.test" } }]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString()));
    await waitFor(() => got.endsWith("|"), 5000, "greeting over TLS");
    c.write("ping");
    await waitFor(() => got.endsWith("ping"), 3000, "echo over TLS");
    expect(got).to.equal("CONNECTED\ntls|ping");
    c.destroy();
    await expectNoActiveConnections(proxy);
  });

  it("checks an IP target against the certificate's IP addresses", async () => {
    server = await backend(ready, ca.issue({ commonName: "ip", altNames: ["127.0.0.1"] }));
    const { proxy, port } = await setup(new ScriptProtocol({ starttls: true }), [{ host: "127.0.0.1", port: server.port, tls: { ca: ca.cert } }]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString()));
    await waitFor(() => got.endsWith("|"), 5000, "greeting over TLS");
    expect(got).to.equal("CONNECTED\ntls|");
    c.destroy();
    await expectNoActiveConnections(proxy);
  });

  it("refuses a certificate the target's tls does not trust, or for another name", async () => {
    server = await backend(ready, ca.issue({ commonName: "db.test" }));
    for (const tls of [{ servername: "db.test" }, { ca: ca.cert, servername: "other.test" }]) {
      const protocol = new ScriptProtocol({ starttls: true });
      const { proxy, port } = await setup(protocol, [{ host: "127.0.0.1", port: server.port, tls }]);
      const c = await clientOf(port());
      expect((await readAll(c)).toString()).to.equal("FAIL PRX_ERR_UPSTREAM_CONNECT\n");
      await expectNoActiveConnections(proxy);
      await proxy.close();
    }
  });

  it("encrypts without verifying only when the target says rejectUnauthorized: false", async () => {
    server = await backend(ready, createTestCa("Other CA").issue({ commonName: "db.test" }));
    const { proxy, port } = await setup(new ScriptProtocol({ starttls: true }), [{ host: "127.0.0.1", port: server.port, tls: { rejectUnauthorized: false } }]);
    stop = () => proxy.close();
    const c = await clientOf(port());
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString()));
    await waitFor(() => got.endsWith("|"), 5000, "greeting over TLS");
    expect(got).to.equal("CONNECTED\ntls|");
    c.destroy();
    await expectNoActiveConnections(proxy);
  });

  it("bounds the TLS handshake by the connect timeout", async () => {
    server = await backend(ready, "hang");
    const { proxy, port } = await setup(new ScriptProtocol({ starttls: true, handshakeMs: 20_000 }), [{ host: "127.0.0.1", port: server.port, tls: { ca: ca.cert } }], 300);
    stop = () => proxy.close();
    const started = Date.now();
    const c = await clientOf(port());
    expect((await readAll(c)).toString()).to.equal("FAIL PRX_ERR_UPSTREAM_TIMEOUT\n");
    expect(Date.now() - started).to.be.below(5000);
    await expectNoActiveConnections(proxy);
  });
});

/**
 * connectUpstream's `handshake`: a protocol's first exchange with each connected target, inside
 * the connect loop. This one reads the backend's first line, refuses "BUSY", and relays the
 * rest after passing the line on.
 */
class VetProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "vet";
  readonly errors: string[] = [];
  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
  }
  async handle(conn: Connection): Promise<void> {
    const proxy = conn.context;
    const match = proxy.tryResolveSync(conn, { listener: conn.listener.name, protocol: this.name, clientIp: conn.clientIp })!;
    let head: { before: Buffer; rest: Buffer; ended: boolean } | undefined;
    const vet = async (socket: Socket): Promise<void> => {
      head = await readUntil(socket, "\n");
      if (head === undefined) throw new Error("backend closed before its greeting");
      if (head.before.toString() === "BUSY") throw new Error("backend busy");
    };
    let socket: Socket;
    try {
      ({ socket } = await proxy.connectUpstream(conn, match, undefined, { handshake: vet }));
    } catch (err) {
      this.errors.push(`${(err as { code?: string }).code}: ${(err as Error).message}`);
      return conn.destroy("connect-failed", err);
    }
    relay(conn, socket, { idleMs: 10_000, upstreamHead: [Buffer.concat([head!.before, Buffer.from("\n"), head!.rest])], upstreamEnded: head!.ended });
  }
}

describe("connectUpstream handshake", () => {
  let servers: TestServer[] = [];
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await stop?.();
    for (const s of servers) await s.close();
    stop = undefined;
    servers = [];
  });

  async function twoBackends(): Promise<[TestServer, TestServer]> {
    const busy = await startTcpServer((s) => s.end("BUSY\n"), { allowHalfOpen: true });
    const good = await startTcpServer(
      (s) => {
        s.write("OK\n");
        s.on("data", (d: Buffer) => s.write(d));
        s.once("end", () => s.end());
      },
      { allowHalfOpen: true },
    );
    servers = [busy, good];
    return [busy, good];
  }

  it("treats a rejected handshake as a failed attempt that onUpstreamResponse may retry on another target", async () => {
    const [busy, good] = await twoBackends();
    const seen: Array<[string | undefined, number]> = [];
    const retryOnce: ProxyPlugin = {
      name: "RetryOnce",
      apply(proxy) {
        proxy.hooks.onUpstreamResponse.tap("RetryOnce", (res) => {
          seen.push([res.error?.code, res.attempt]);
          if (res.attempt === 1) res.retry = { delayMs: 0, reason: "busy" };
          return res;
        });
      },
    };
    const protocol = new VetProtocol();
    const { proxy, port } = await startProxy({
      listeners: [{ name: "v", protocol: "vet", port: 0 }],
      routes: [{ listener: "v", targets: [`127.0.0.1:${busy.port}`, `127.0.0.1:${good.port}`] }],
      plugins: [protocol, retryOnce],
    });
    stop = () => proxy.close();
    const c = await clientOf(port());
    let got = "";
    c.on("data", (d: Buffer) => (got += d.toString()));
    c.write("ping");
    await waitFor(() => got === "OK\nping", 3000, "the second target's greeting and echo");
    expect(seen).to.deep.equal([["PRX_ERR_UPSTREAM_CONNECT", 1]]);
    expect(busy.accepted).to.equal(1);
    c.end();
    await expectNoActiveConnections(proxy);
  });

  it("fails the connect with the handshake's error when no tap retries, and closes the backend", async () => {
    const [busy] = await twoBackends();
    const protocol = new VetProtocol();
    const { proxy, port } = await startProxy({ listeners: [{ name: "v", protocol: "vet", port: 0 }], routes: [{ listener: "v", targets: [`127.0.0.1:${busy.port}`] }], plugins: [protocol] });
    stop = () => proxy.close();
    const c = await clientOf(port());
    await readAll(c);
    expect(protocol.errors).to.deep.equal(["PRX_ERR_UPSTREAM_CONNECT: backend busy"]);
    expect(proxy.stats().closeReasons["connect-failed"]).to.equal(1);
    await expectNoActiveConnections(proxy);
    await waitFor(() => busy.sockets.every((s) => s.destroyed || s.readableEnded), 3000, "backend socket closed by the proxy");
  });
});
