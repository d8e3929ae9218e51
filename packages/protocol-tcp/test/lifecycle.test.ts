import { expect } from "chai";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import type { CloseInfo } from "@switchyard/core";
import { expectNoLeakedResources, resourceBaseline, startBlackhole, startTcpServer, waitFor, type Blackhole, type TestServer } from "@switchyard/test-utils";
import { errorFields, pgThrough, rawExchange, startPgProxy, startupPacket, type PgEnv } from "./pg-helpers.js";
import { connectError, startMyProxy, type MyEnv } from "./mysql-helpers.js";

/** Close infos of a proxy's connections, in order. */
function closes(env: PgEnv | MyEnv): CloseInfo[] {
  const out: CloseInfo[] = [];
  env.proxy.events.on("connectionClose", (_c, info) => out.push(info));
  return out;
}

async function open(port: number): Promise<Socket> {
  const s = connect({ host: "127.0.0.1", port });
  s.on("error", () => {});
  await once(s, "connect");
  return s;
}

describe("protocol-tcp lifecycle: aborts, deadlines, bounded buffering", () => {
  let env: PgEnv | MyEnv | undefined;
  let backend: TestServer | undefined;
  let blackhole: Blackhole | undefined;

  let baseline: Map<string, number>;
  beforeEach(() => {
    baseline = resourceBaseline();
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
    await backend?.close();
    backend = undefined;
    await blackhole?.close();
    blackhole = undefined;
    // nothing left open or scheduled: sockets, servers, timers
    await expectNoLeakedResources(baseline);
  });

  it("postgres: a client that sends nothing is closed by the handshake deadline", async () => {
    env = await startPgProxy([{ listener: "pg", targets: ["127.0.0.1:5432"] }], { timeouts: { handshake: 300 } });
    const seen = closes(env);
    const s = await open(env.port());
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    await once(s, "close");
    await waitFor(() => seen.length > 0, 3000, "the proxy's close");
    expect(seen[0]?.reason).to.equal("handshake-timeout");
    // told why, in PostgreSQL's terms, before the close (core's refusal through the protocol)
    expect(Buffer.concat(chunks).toString("latin1")).to.contain("C08006");
  });

  it("postgres: a client that resets mid-startup, or during the connect, leaves nothing behind", async () => {
    blackhole = await startBlackhole();
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${blackhole.port}`] }], { timeouts: { connect: 5000 } });
    const seen = closes(env);
    const a = await open(env.port());
    a.write(startupPacket({ user: "postgres" }).subarray(0, 11));
    await new Promise((r) => setTimeout(r, 50));
    a.resetAndDestroy();
    const b = await open(env.port());
    b.write(startupPacket({ user: "postgres" }));
    await waitFor(() => [...env!.proxy.connections].some((c) => c.state === "connecting"), 3000, "the connect to start");
    b.resetAndDestroy();
    await waitFor(() => seen.length === 2, 3000, "both to close");
    expect(seen.map((i) => i.reason).sort()).to.deep.equal(["client-error", "client-error"]);
  });

  it("postgres: a client flooding during the connect is not buffered beyond the reader's bound", async () => {
    blackhole = await startBlackhole();
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${blackhole.port}`] }], { timeouts: { connect: 2500 } });
    const s = await open(env.port());
    s.write(startupPacket({ user: "postgres" }));
    const flood = Buffer.alloc(256 * 1024, 0x41);
    for (let i = 0; i < 16; i++) s.write(flood);
    await new Promise((r) => setTimeout(r, 300));
    const [conn] = [...env.proxy.connections];
    expect(conn?.state).to.equal("connecting");
    expect(conn!.rawSocket.bytesRead).to.be.below(1024 * 1024);
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    await once(s, "close");
    expect(errorFields(Buffer.concat(got)).C).to.equal("08001");
  });

  it("postgres: a backend that never finishes startup gets 08006 at the auth deadline", async () => {
    backend = await startTcpServer((sock) => sock.on("data", () => {}));
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`] }], {}, { authTimeoutMs: 300 });
    const seen = closes(env);
    const got = await rawExchange(env.port(), startupPacket({ user: "postgres" }));
    const f = errorFields(got);
    expect(f.C).to.equal("08006");
    expect(f.M).to.contain("in time");
    await waitFor(() => seen.length === 1, 3000, "the close");
    expect(seen[0]?.reason).to.equal("handshake-timeout");
  });

  it("postgres: a client leaving during authentication closes the backend connection", async () => {
    const backendClosed: Socket[] = [];
    backend = await startTcpServer((sock) => {
      sock.on("close", () => backendClosed.push(sock));
      sock.on("data", () => {
        // AuthenticationCleartextPassword: the client must answer
        sock.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]));
      });
    });
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`] }]);
    const s = await open(env.port());
    s.write(startupPacket({ user: "postgres" }));
    await once(s, "data");
    s.destroy();
    await waitFor(() => backendClosed.length === 1, 3000, "the backend connection to close");
  });

  it("postgres: the backend closing mid-startup answers 08006", async () => {
    backend = await startTcpServer((sock) => sock.once("data", () => sock.end(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]))));
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`] }]);
    const c = pgThrough(env.port(), { password: "x" });
    const err = await c.connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("08006");
  });

  it("postgres: shutting down answers 57P01 to a startup that arrives while draining", async () => {
    blackhole = await startBlackhole();
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${blackhole.port}`] }]);
    const s = await open(env.port());
    // the connection is accepted and waits for its startup while the proxy begins to close
    const closing = env.proxy.close({ timeout: 2000 });
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    s.write(startupPacket({ user: "postgres" }));
    await once(s, "close");
    await closing;
    expect(errorFields(Buffer.concat(got)).C).to.equal("57P01");
  });

  it("mysql: shutting down answers ERR 1053 to a handshake that arrives while draining", async () => {
    blackhole = await startBlackhole();
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${blackhole.port}`] }]);
    const port = env.port();
    const s = await open(port);
    await once(s, "data");
    const closing = env.proxy.close({ timeout: 2000 });
    const err = await connectError(port, { user: "u" }).catch((e: Error) => e);
    expect((err as { code?: string } | undefined)?.code).to.equal("ECONNREFUSED");
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    const response = Buffer.alloc(32 + 3);
    response.writeUInt32LE(0x000fa68d, 0);
    response[32] = 0x75; // user "u"
    s.write(Buffer.concat([Buffer.from([response.length, 0, 0, 1]), response]));
    await once(s, "close");
    await closing;
    const answer = Buffer.concat(got);
    expect(answer[4]).to.equal(0xff);
    expect(answer.readUInt16LE(5)).to.equal(1053);
  });

  it("mysql: a client that reads the greeting and says nothing is closed by the handshake deadline", async () => {
    env = await startMyProxy([{ listener: "my", targets: ["127.0.0.1:3306"] }], { timeouts: { handshake: 300 } });
    const seen = closes(env);
    const s = await open(env.port());
    const [greeting] = (await once(s, "data")) as [Buffer];
    expect(greeting[4]).to.equal(10);
    await once(s, "close");
    await waitFor(() => seen.length > 0, 3000, "the proxy's close");
    expect(seen[0]?.reason).to.equal("handshake-timeout");
  });

  it("mysql: a backend that never greets gets ERR 9001 at the auth deadline", async () => {
    backend = await startTcpServer((sock) => sock.on("data", () => {}));
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${backend.port}`] }], {}, { authTimeoutMs: 300 });
    const err = await connectError(env.port(), { user: "u", database: "d" });
    expect(err?.errno).to.equal(9001);
    expect(err?.message).to.contain("in time");
  });

  it("mysql: an oversized handshake packet is refused with 1043", async () => {
    env = await startMyProxy([{ listener: "my", targets: ["127.0.0.1:3306"] }]);
    const s = await open(env.port());
    await once(s, "data");
    const got: Buffer[] = [];
    s.on("data", (d: Buffer) => got.push(d));
    s.write(Buffer.from([0xff, 0xff, 0xff, 1]));
    await once(s, "close");
    const err = Buffer.concat(got);
    expect(err[4]).to.equal(0xff);
    expect(err.readUInt16LE(5)).to.equal(1043);
    expect(err[3]).to.equal(2);
  });
});
