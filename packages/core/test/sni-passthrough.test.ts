import { once } from "node:events";
import { connect, type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from "node:tls";
import { expect } from "chai";
import { createJsonLogger, type CloseInfo, type ListenerConfig, type RouteConfig } from "@switchyard/core";
import { createTestCa, readBytes, sleep, startTcpServer, useTcpFixture, waitClose, waitFor, type TestServer } from "@switchyard/test-utils";
import { buildClientHello, toRecords } from "./client-hello-build.js";

const ca = createTestCa("SNI test CA");

/** A TLS server with its own certificate; records the SNI each handshake asked for; echoes. */
async function tlsBackend(name: string): Promise<TestServer & { servernames: Array<string | false> }> {
  const pair = ca.issue({ commonName: name });
  const servernames: Array<string | false> = [];
  const sockets: Socket[] = [];
  const server = createTlsServer({ cert: pair.cert, key: pair.key }, (s: TLSSocket) => {
    s.on("error", () => {});
    servernames.push(s.servername ?? false);
    s.on("data", (d: Buffer) => s.write(`${name}:${d.toString()}`));
    s.on("end", () => s.end());
  });
  server.on("connection", (s: Socket) => {
    s.on("error", () => {});
    sockets.push(s);
  });
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    server: server as never,
    port: (server.address() as AddressInfo).port,
    sockets,
    servernames,
    get accepted() {
      return sockets.length;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A plain TCP backend that records what each connection sent. */
async function rawBackend(): Promise<TestServer & { received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = await startTcpServer((s) => {
    const i = received.push(Buffer.alloc(0)) - 1;
    s.on("data", (d: Buffer) => (received[i] = Buffer.concat([received[i]!, d])));
  });
  return Object.assign(server, { received });
}

/** A stream over a TCP socket that writes every byte on its own (to split the ClientHello). */
class ByteSplitter extends Duplex {
  readonly raw: Socket;
  constructor(raw: Socket) {
    super();
    this.raw = raw;
    raw.on("data", (d: Buffer) => this.push(d));
    raw.on("end", () => this.push(null));
    raw.on("close", () => this.destroy());
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    void (async () => {
      for (let i = 0; i < chunk.length; i++) {
        this.raw.write(chunk.subarray(i, i + 1));
        if (i % 8 === 0) await sleep(0);
      }
      cb();
    })();
  }
  override _final(cb: () => void): void {
    this.raw.end();
    cb();
  }
}

describe("SNI passthrough on tcp listeners", () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createJsonLogger((l) => lines.push(JSON.parse(l) as Record<string, unknown>), "debug");
  const clients: Array<Socket | Duplex> = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    lines.length = 0;
  });
  const fx = useTcpFixture();

  async function start(routes: RouteConfig[], listener: Partial<ListenerConfig> = {}) {
    const started = await fx.start({
      logger,
      listeners: [{ name: "sni", protocol: "tcp", port: 0, options: { tlsPassthrough: true }, ...listener }],
      routes: routes.map((r) => ({ listener: "sni", ...r })),
    });
    const closed: CloseInfo[] = [];
    started.proxy.events.on("connectionClose", (_c, info) => closed.push(info));
    return { started, closed, port: started.port() };
  }

  async function tlsClient(port: number, servername: string | undefined, split = false): Promise<TLSSocket> {
    const raw = connect({ port, host: "127.0.0.1" });
    raw.on("error", () => {});
    clients.push(raw);
    await once(raw, "connect");
    const socket = split ? new ByteSplitter(raw) : raw;
    if (split) clients.push(socket);
    const tls = tlsConnect({ socket, ca: ca.cert, ...(servername ? { servername } : { checkServerIdentity: () => undefined }) });
    tls.on("error", () => {});
    clients.push(tls);
    return tls;
  }

  async function exchange(tls: TLSSocket, text: string, answer: string): Promise<string> {
    await once(tls, "secureConnect");
    tls.write(text);
    return (await readBytes(tls, answer.length)).toString();
  }

  it("routes a real TLS client by SNI; the backend completes the handshake with its own certificate", async () => {
    const a = await fx.serve(tlsBackend("a.example"));
    const b = await fx.serve(tlsBackend("b.example"));
    const { port, closed } = await start([
      { name: "a", match: { sni: "a.example" }, targets: [`127.0.0.1:${a.port}`] },
      { name: "b", match: { sni: "*.example" }, targets: [`127.0.0.1:${b.port}`] },
    ]);
    const tls = await tlsClient(port, "b.example");
    expect(await exchange(tls, "hi!", "b.example:hi!")).to.equal("b.example:hi!");
    expect(tls.authorized).to.equal(true);
    expect(tls.getPeerCertificate().subject.CN).to.equal("b.example");
    expect(b.servernames).to.deep.equal(["b.example"]);
    const tlsA = await tlsClient(port, "a.example");
    await once(tlsA, "secureConnect");
    expect(tlsA.getPeerCertificate().subject.CN).to.equal("a.example");
    tls.end();
    tlsA.end();
    await waitFor(() => closed.length === 2);
    expect(closed.map((c) => c.route).sort()).to.deep.equal(["a", "b"]);
  });

  it("routes a ClientHello that arrives one byte per write, and passes it on byte-identical", async () => {
    const b = await fx.serve(tlsBackend("split.example"));
    const raw = await fx.serve(rawBackend());
    const { port } = await start([
      { name: "tls", match: { sni: "split.example" }, targets: [`127.0.0.1:${b.port}`] },
      { name: "raw", match: { sni: "raw.example" }, targets: [`127.0.0.1:${raw.port}`] },
    ]);
    // a real client whose every byte is its own write
    const tls = await tlsClient(port, "split.example", true);
    await once(tls, "secureConnect");
    expect(tls.authorized).to.equal(true);
    await waitFor(() => b.servernames.length === 1);
    expect(b.servernames).to.deep.equal(["split.example"]);
    // a ClientHello in several records, one byte per write, followed by more bytes
    const hello = toRecords(buildClientHello({ sni: "raw.example", alpn: ["h2"], grease: true, padding: 300 }), 97);
    const after = Buffer.from("after the hello");
    const c = connect({ port, host: "127.0.0.1" });
    c.on("error", () => {});
    clients.push(c);
    await once(c, "connect");
    c.setNoDelay(true);
    for (let i = 0; i < hello.length; i++) {
      c.write(hello.subarray(i, i + 1));
      if (i % 16 === 0) await sleep(1);
    }
    c.write(after);
    const all = Buffer.concat([hello, after]);
    await waitFor(() => raw.received[0]?.length === all.length);
    expect(raw.received[0]!.equals(all)).to.equal(true);
  });

  it("sends a ClientHello without SNI to a route that does not require one, or closes with no route", async () => {
    const b = await fx.serve(tlsBackend("default.example"));
    const { port, closed } = await start([
      { name: "named", match: { sni: "a.example" }, targets: ["127.0.0.1:1"] },
      { name: "fallback", targets: [`127.0.0.1:${b.port}`] },
    ]);
    const tls = await tlsClient(port, undefined);
    await once(tls, "secureConnect");
    await waitFor(() => b.servernames.length === 1);
    expect(b.servernames).to.deep.equal([false]);
    tls.destroy();
    await waitFor(() => closed.length === 1);
    expect(closed[0]!.route).to.equal("fallback");
    fx.started!.proxy.setRoutes([{ name: "named", listener: "sni", match: { sni: "a.example" }, targets: ["127.0.0.1:1"] }]);
    const tls2 = await tlsClient(port, undefined);
    await waitClose(tls2 as unknown as Socket);
    await waitFor(() => closed.length === 2);
    expect(closed[1]!.reason).to.equal("no-route");
  });

  it("reads a PROXY header first, then peeks the ClientHello behind it (both split)", async () => {
    const raw = await fx.serve(rawBackend());
    const { port, closed } = await start([{ name: "db", match: { sni: "db.example", clientIp: "203.0.113.0/24" }, targets: [`127.0.0.1:${raw.port}`] }], {
      proxyProtocol: { trustedProxies: ["127.0.0.1"] },
    });
    const hello = toRecords(buildClientHello({ sni: "db.example" }), 50);
    const c = connect({ port, host: "127.0.0.1" });
    c.on("error", () => {});
    clients.push(c);
    await once(c, "connect");
    const all = Buffer.concat([Buffer.from("PROXY TCP4 203.0.113.3 192.0.2.1 5000 443\r\n"), hello]);
    for (let at = 0; at < all.length; at += 7) {
      c.write(all.subarray(at, at + 7));
      await sleep(1);
    }
    await waitFor(() => raw.received[0]?.length === hello.length);
    expect(raw.received[0]!.equals(hello)).to.equal(true);
    c.end();
    await waitFor(() => closed.length === 1);
    expect(closed[0]!.route).to.equal("db");
  });

  it("closes non-TLS bytes with a log line and never dials", async () => {
    const raw = await fx.serve(rawBackend());
    const { port, closed } = await start([{ name: "any", targets: [`127.0.0.1:${raw.port}`] }]);
    const c = connect({ port, host: "127.0.0.1" });
    c.on("error", () => {});
    clients.push(c);
    c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitClose(c);
    await waitFor(() => closed.length === 1);
    expect(closed[0]!.reason).to.equal("protocol-error");
    expect(raw.accepted).to.equal(0);
    const line = lines.find((l) => l.msg === "not a TLS ClientHello on a TLS passthrough listener");
    expect(line?.error).to.match(/not a TLS handshake/);
  });

  it("closes a ClientHello that does not complete within the handshake deadline", async () => {
    const { port, closed } = await start([{ name: "any", targets: ["127.0.0.1:1"] }], { timeouts: { handshake: 200 } });
    const c = connect({ port, host: "127.0.0.1" });
    c.on("error", () => {});
    clients.push(c);
    c.write(toRecords(buildClientHello({ sni: "slow.example" })).subarray(0, 20));
    await waitClose(c, 3000);
    await waitFor(() => closed.length === 1);
    expect(closed[0]!.reason).to.equal("handshake-timeout");
  });

  it("lets each route pass TLS through or terminate it on a listener with certificates", async () => {
    const pass = await fx.serve(tlsBackend("pass.example"));
    const plain = await fx.serve(startTcpServer((s) => s.on("data", (d: Buffer) => s.write(`plain:${d.toString()}`))));
    const own = ca.issue({ commonName: "term.example" });
    const { port, closed } = await start(
      [
        { name: "pass", match: { sni: "pass.example" }, targets: [`127.0.0.1:${pass.port}`], options: { tls: "passthrough" } },
        { name: "term", match: { sni: "term.example" }, targets: [`127.0.0.1:${plain.port}`] },
      ],
      { tls: { cert: own.cert, key: own.key } },
    );
    const t1 = await tlsClient(port, "pass.example");
    expect(await exchange(t1, "one", "pass.example:one")).to.equal("pass.example:one");
    expect(t1.getPeerCertificate().subject.CN).to.equal("pass.example");
    const t2 = await tlsClient(port, "term.example");
    await once(t2, "secureConnect");
    expect(t2.getPeerCertificate().subject.CN).to.equal("term.example");
    t2.write("two");
    expect((await readBytes(t2, 9)).toString()).to.equal("plain:two");
    t1.end();
    t2.end();
    await waitFor(() => closed.length === 2);
  });

  it("closes a route that asks to terminate on a listener without certificates, with a log line", async () => {
    const { port, closed } = await start([{ name: "term", targets: ["127.0.0.1:1"], options: { tls: "terminate" } }]);
    const tls = await tlsClient(port, "x.example");
    await waitClose(tls as unknown as Socket);
    await waitFor(() => closed.length === 1);
    expect(closed[0]!.reason).to.equal("protocol-error");
    expect(lines.some((l) => l.msg === "route asks to terminate TLS on a listener without certificates")).to.equal(true);
  });

  it("checks the listener and route options", async () => {
    const fails = async (listeners: ListenerConfig[], routes: RouteConfig[]) => {
      try {
        await fx.start({ listeners, routes });
        return "";
      } catch (err) {
        return (err as Error).message;
      }
    };
    const l = (options: Record<string, unknown>): ListenerConfig => ({ name: "s", protocol: "tcp", port: 0, options });
    expect(await fails([l({ tlsPassthrough: "yes" })], [])).to.match(/tlsPassthrough must be true or false/);
    expect(await fails([l({})], [{ targets: ["127.0.0.1:1"], options: { tls: "offload" } }])).to.match(/options.tls must be "passthrough" or "terminate"/);
  });
});
