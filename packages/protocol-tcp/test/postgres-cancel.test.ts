import { expect } from "chai";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { expectNoLeakedResources, resourceBaseline, startTcpServer, waitFor, type TestServer } from "@switchyard/test-utils";
import { PG_TARGET, pgThrough, startPgProxy, startupPacket, type PgEnv } from "./pg-helpers.js";

function cancelRequest(pid: number, secret: Buffer): Buffer {
  const out = Buffer.alloc(12 + secret.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(80877102, 4);
  out.writeInt32BE(pid, 8);
  secret.copy(out, 12);
  return out;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** Sends a CancelRequest to the proxy on a new connection and waits for the close. */
async function sendCancel(port: number, pid: number, secret: Buffer): Promise<void> {
  const s = connect({ host: "127.0.0.1", port });
  s.on("error", () => {});
  await once(s, "connect");
  s.end(cancelRequest(pid, secret));
  s.resume();
  await once(s, "close");
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** Reads messages from a raw client socket until ReadyForQuery; returns them by type. */
async function readUntilReady(s: Socket): Promise<Array<{ type: string; body: Buffer }>> {
  let buf = Buffer.alloc(0);
  const out: Array<{ type: string; body: Buffer }> = [];
  for await (const chunk of s) {
    buf = Buffer.concat([buf, chunk as Buffer]);
    while (buf.length >= 5 && buf.length >= 1 + buf.readInt32BE(1)) {
      const len = buf.readInt32BE(1);
      out.push({ type: String.fromCharCode(buf[0]!), body: buf.subarray(5, 1 + len) });
      buf = buf.subarray(1 + len);
      if (out[out.length - 1]!.type === "Z") return out;
    }
  }
  return out;
}

describe("PostgresProtocol cancel keys", () => {
  let env: PgEnv | undefined;
  let fake: TestServer | undefined;

  let baseline: Map<string, number>;
  beforeEach(() => {
    baseline = resourceBaseline();
  });
  afterEach(async () => {
    await env?.close();
    env = undefined;
    await fake?.close();
    fake = undefined;
    // nothing left open or scheduled: sockets, servers, timers
    await expectNoLeakedResources(baseline);
  });

  it("cancels pg_sleep(30) through the proxy with the proxy's key; a wrong key cancels nothing", async function () {
    this.timeout(30_000);
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }]);
    const c = pgThrough(env.port());
    await c.connect();
    const backendPid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    expect(processID).to.not.equal(backendPid);
    expect(env.protocol.cancelKeyCount(env.proxy)).to.equal(1);

    // a wrong secret: the short sleep finishes normally
    const short = c.query("select pg_sleep(0.5) as done");
    await new Promise((r) => setTimeout(r, 100));
    await sendCancel(env.port(), processID, int32((secretKey + 1) | 0));
    await short;

    const started = Date.now();
    const long = c.query("select pg_sleep(30)").then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    await sendCancel(env.port(), processID, int32(secretKey));
    const err = await long;
    expect(err?.code).to.equal("57014");
    expect(Date.now() - started).to.be.below(10_000);
    // the session goes on after the cancel
    expect((await c.query("select 1 as one")).rows[0].one).to.equal(1);
    await c.end();
    await waitFor(() => env!.protocol.cancelKeyCount(env!.proxy) === 0, 3000, "the key to be dropped");
  });

  it("issues no key when the backend sends none, and maps protocol 3.2 long keys", async () => {
    const backendSecret = Buffer.alloc(32, 7);
    const cancels: Buffer[] = [];
    let sendKey = false;
    fake = await startTcpServer((s) => {
      s.once("data", (first: Buffer) => {
        if (first.readInt32BE(4) === 80877102) {
          cancels.push(first);
          s.end();
          return;
        }
        const auth = message("R", int32(0));
        const key = sendKey ? message("K", Buffer.concat([int32(4242), backendSecret])) : Buffer.alloc(0);
        s.write(Buffer.concat([auth, key, message("Z", Buffer.from("I"))]));
      });
    });
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${fake.port}`] }]);

    const noKey = pgThrough(env.port());
    await noKey.connect();
    expect((noKey as unknown as { processID: unknown }).processID).to.equal(null);
    expect(env.protocol.cancelKeyCount(env.proxy)).to.equal(0);
    await noKey.end().catch(() => {});

    sendKey = true;
    const s = connect({ host: "127.0.0.1", port: env.port() });
    s.on("error", () => {});
    await once(s, "connect");
    const v32 = startupPacket({ user: "postgres" });
    v32.writeInt32BE(196610, 4);
    s.write(v32);
    const messages = await readUntilReady(s);
    const k = messages.find((m) => m.type === "K")!;
    expect(k.body.length).to.equal(4 + 32);
    const pid = k.body.readInt32BE(0);
    const secret = k.body.subarray(4);
    expect(pid).to.not.equal(4242);
    expect(secret.equals(backendSecret)).to.equal(false);
    await sendCancel(env.port(), pid, secret);
    await waitFor(() => cancels.length === 1, 3000, "the backend to receive the cancel");
    expect(cancels[0]!.equals(cancelRequest(4242, backendSecret))).to.equal(true);
    s.destroy();
    await waitFor(() => env!.protocol.cancelKeyCount(env!.proxy) === 0, 3000, "the key to be dropped");
    // the dropped key reaches nothing any more
    await sendCancel(env.port(), pid, secret);
    expect(cancels.length).to.equal(1);
  });
});
