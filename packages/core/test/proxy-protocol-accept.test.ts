import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { expect } from "chai";
import {
  createJsonLogger,
  encodeProxyHeaderV2,
  encodeProxyHeaderV2Local,
  inboundProxyHeader,
  type CloseInfo,
  type ConnectionInfo,
  type ListenerConfig,
} from "@switchyard/core";
import { readBytes, sleep, startTcpServer, useTcpFixture, waitClose, waitFor, type TestServer } from "@switchyard/test-utils";

/** A backend that records every byte each connection sent it and answers "ok". */
function recordingBackend(): Promise<TestServer & { received: Buffer[] }> {
  const received: Buffer[] = [];
  return startTcpServer((s) => {
    const i = received.push(Buffer.alloc(0)) - 1;
    s.on("data", (d: Buffer) => {
      received[i] = Buffer.concat([received[i]!, d]);
      if (received[i]!.includes("\n")) s.write("ok\n");
    });
  }).then((server) => Object.assign(server, { received }));
}

/** A client socket from a chosen loopback address (127.0.0.2 is not 127.0.0.1). */
async function clientFrom(port: number, localAddress = "127.0.0.1"): Promise<Socket> {
  const s = connect({ port, host: "127.0.0.1", localAddress });
  s.on("error", () => {});
  await once(s, "connect");
  return s;
}

async function writeSlowly(s: Socket, data: Buffer | string, piece = 1): Promise<void> {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  for (let at = 0; at < buf.length; at += piece) {
    s.write(buf.subarray(at, at + piece));
    await sleep(1);
  }
}

describe("PROXY protocol inbound (tcp listener)", () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createJsonLogger((l) => lines.push(JSON.parse(l) as Record<string, unknown>), "debug");
  const clients: Socket[] = [];
  // registered before the fixture's: clients go first, then the fixture checks the proxy is empty
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    lines.length = 0;
  });
  const fx = useTcpFixture();

  async function setup(proxyProtocol: ListenerConfig["proxyProtocol"], extra: Pick<ListenerConfig, "timeouts" | "maxConnections"> = {}) {
    const proxied = await fx.serve(recordingBackend());
    const direct = await fx.serve(recordingBackend());
    const started = await fx.start({
      logger,
      listeners: [{ name: "tcp", protocol: "tcp", port: 0, ...(proxyProtocol ? { proxyProtocol } : {}), ...extra }],
      routes: [
        { name: "from-doc-net", listener: "tcp", match: { clientIp: "203.0.113.0/24" }, targets: [`127.0.0.1:${proxied.port}`] },
        { name: "other", listener: "tcp", targets: [`127.0.0.1:${direct.port}`] },
      ],
    });
    const opened: ConnectionInfo[] = [];
    const closed: Array<{ c: ConnectionInfo; info: CloseInfo }> = [];
    const accepted: string[] = [];
    started.proxy.events.on("connectionOpen", (c) => opened.push({ ...c }));
    started.proxy.events.on("connectionClose", (c, info) => closed.push({ c, info }));
    started.proxy.hooks.onAccept.tap("Spy", (conn) => {
      accepted.push(`${conn.clientIp}:${conn.info.clientPort}`);
      return undefined;
    });
    const port = started.port();
    const client = async (from?: string) => {
      const s = await clientFrom(port, from);
      clients.push(s);
      return s;
    };
    return { proxied, direct, started, opened, closed, accepted, client };
  }

  it("reads a v1 header sent one byte at a time: the header's address routes, reaches onAccept, events and logs", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] });
    const c = await t.client();
    await writeSlowly(c, "PROXY TCP4 203.0.113.9 192.0.2.1 40000 5432\r\nhello\n");
    expect((await readBytes(c, 3)).toString()).to.equal("ok\n");
    expect(t.proxied.received).to.deep.equal([Buffer.from("hello\n")]);
    expect(t.direct.accepted).to.equal(0);
    expect(t.accepted).to.deep.equal(["203.0.113.9:40000"]);
    expect(t.opened.map((o) => [o.clientIp, o.clientPort])).to.deep.equal([["203.0.113.9", 40000]]);
    const conn = [...t.started.proxy.connections][0]!;
    expect(inboundProxyHeader(conn)?.destination).to.deep.equal({ address: "192.0.2.1", port: 5432 });
    c.end();
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.c.clientIp).to.equal("203.0.113.9");
    expect(t.closed[0]!.info.route).to.equal("from-doc-net");
  });

  it("reads a v2 header with TLVs in the same write as the data, and an IPv6 one", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.0/8"] });
    const c = await t.client();
    const header = encodeProxyHeaderV2({ source: { address: "203.0.113.77", port: 1234 }, destination: { address: "192.0.2.1", port: 443 }, authority: "db.example" });
    c.write(Buffer.concat([header, Buffer.from("v2 data\n")]));
    expect((await readBytes(c, 3)).toString()).to.equal("ok\n");
    expect(t.proxied.received).to.deep.equal([Buffer.from("v2 data\n")]);
    expect(t.accepted).to.deep.equal(["203.0.113.77:1234"]);
    const c6 = await t.client();
    c6.write(Buffer.concat([encodeProxyHeaderV2({ source: { address: "2001:db8::7", port: 9 }, destination: { address: "::1", port: 1 } }), Buffer.from("six\n")]));
    expect((await readBytes(c6, 3)).toString()).to.equal("ok\n");
    expect(t.accepted[1]).to.equal("2001:db8::7:9");
    expect(t.direct.received).to.deep.equal([Buffer.from("six\n")]);
  });

  it("keeps the real peer address for a v2 LOCAL header and for v1 UNKNOWN", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] });
    const c = await t.client();
    c.write(Buffer.concat([encodeProxyHeaderV2Local(), Buffer.from("local\n")]));
    expect((await readBytes(c, 3)).toString()).to.equal("ok\n");
    const c2 = await t.client();
    c2.write("PROXY UNKNOWN\r\nunknown\n");
    expect((await readBytes(c2, 3)).toString()).to.equal("ok\n");
    expect(t.accepted.map((a) => a.split(":")[0])).to.deep.equal(["127.0.0.1", "127.0.0.1"]);
    expect(t.direct.received.map(String).sort()).to.deep.equal(["local\n", "unknown\n"]);
  });

  it("does not believe a peer outside trustedProxies: its header reaches the backend as data", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] });
    const c = await t.client("127.0.0.2");
    c.write("PROXY TCP4 203.0.113.9 192.0.2.1 40000 5432\r\nhello\n");
    expect((await readBytes(c, 3)).toString()).to.equal("ok\n");
    expect(t.proxied.accepted).to.equal(0);
    expect(t.direct.received).to.deep.equal([Buffer.from("PROXY TCP4 203.0.113.9 192.0.2.1 40000 5432\r\nhello\n")]);
    expect(t.accepted).to.have.length(1);
    expect(t.accepted[0]!.startsWith("127.0.0.2:")).to.equal(true);
  });

  it("closes a trusted peer's malformed header with a log line, without dialing", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] });
    const c = await t.client();
    c.write("GET / HTTP/1.1\r\n\r\n");
    await waitClose(c);
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.info.reason).to.equal("protocol-error");
    expect(t.closed[0]!.info.error?.message).to.match(/not a PROXY protocol header/);
    expect(t.accepted).to.deep.equal([]);
    expect(t.opened).to.have.length(1); // reported open (with the peer's address) before it closed
    expect(t.proxied.accepted + t.direct.accepted).to.equal(0);
    expect(lines.some((l) => l.msg === "proxy protocol header refused" && l.level === "warn")).to.equal(true);
  });

  it("closes a trusted peer whose header is too slow, at timeoutMs", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"], timeoutMs: 200 });
    const c = await t.client();
    const t0 = Date.now();
    c.write("PROXY TCP4 203.0");
    await waitClose(c, 3000);
    const took = Date.now() - t0;
    expect(took).to.be.within(150, 2000);
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.info.reason).to.equal("handshake-timeout");
    expect(lines.some((l) => l.msg === "proxy protocol header timed out")).to.equal(true);
  });

  it("is bounded by the listener's handshake deadline too", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"], timeoutMs: 10_000 }, { timeouts: { handshake: 200 } });
    const c = await t.client();
    await waitClose(c, 3000);
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.info.reason).to.equal("handshake-timeout");
    // reported open (with the peer's address) before it was reported closed
    expect(t.opened.map((o) => o.clientIp)).to.deep.equal(["127.0.0.1"]);
  });

  it("refuses a v2 header longer than the limit at once, without waiting for its bytes", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"], timeoutMs: 5000 });
    const c = await t.client();
    const huge = encodeProxyHeaderV2({ source: { address: "203.0.113.1", port: 1 }, destination: { address: "192.0.2.1", port: 2 }, authority: "a".repeat(10_000) });
    const t0 = Date.now();
    c.write(huge.subarray(0, 16));
    await waitClose(c, 3000);
    expect(Date.now() - t0).to.be.below(1000);
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.info.error?.message).to.match(/exceeds the limit of 4096/);
  });

  it("counts a client that leaves before its header as client-closed", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] });
    const c = await t.client();
    c.end("PROXY TCP4");
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.info.reason).to.equal("client-closed");
    const c2 = await t.client();
    c2.resetAndDestroy();
    await waitFor(() => t.closed.length === 2);
  });

  it("passes on a FIN that follows the header at once (no bytes after it)", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] });
    for (let i = 0; i < 20; i++) {
      const c = await t.client();
      c.end("PROXY TCP4 203.0.113.9 192.0.2.1 40000 5432\r\n");
    }
    await waitFor(() => t.closed.length === 20, 3000);
    // the FIN reached the backend (it closed), and the connection ended normally on its route
    expect(new Set(t.closed.map((c) => `${c.info.reason}/${c.info.route}`))).to.deep.equal(new Set(["done/from-doc-net"]));
  });

  it("reports a connection refused at accept (limit) as opened, then closed", async () => {
    const t = await setup({ trustedProxies: ["127.0.0.1"] }, { maxConnections: 1 });
    const order: string[] = [];
    t.started.proxy.events.on("connectionOpen", (c) => order.push(`open ${c.id}`));
    t.started.proxy.events.on("connectionClose", (c) => order.push(`close ${c.id}`));
    const first = await t.client();
    first.write("PROXY TCP4 203.0.113.9 192.0.2.1 40000 5432\r\nhello\n");
    expect((await readBytes(first, 3)).toString()).to.equal("ok\n");
    const second = await t.client();
    await waitClose(second);
    await waitFor(() => t.closed.length === 1);
    expect(t.closed[0]!.info.reason).to.equal("rejected");
    const id = t.closed[0]!.c.id;
    expect(order.filter((e) => e.endsWith(id))).to.deep.equal([`open ${id}`, `close ${id}`]);
  });

  it("checks the option when the proxy is built", async () => {
    const make = (pp: unknown) => () => fx.start({ listeners: [{ name: "t", protocol: "tcp", port: 0, proxyProtocol: pp as never }], routes: [] });
    const sync = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        return "";
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(await sync(make({ trustedProxies: [] }))).to.match(/proxyProtocol.trustedProxies must be a non-empty list/);
    expect(await sync(make({ trustedProxies: ["10.0.0.0/33"] }))).to.match(/proxyProtocol.trustedProxies: invalid CIDR/);
    expect(await sync(make({ trustedProxies: ["10.0.0.1"], timeoutMs: 0 }))).to.match(/proxyProtocol.timeoutMs must be a positive integer/);
    expect(await sync(make({ trustedProxies: ["10.0.0.1"], timeout: 5 }))).to.match(/unknown option "timeout"/);
  });
});
