import { expect } from "chai";
import { randomBytes } from "node:crypto";
import { createTestCa, expectNoLeakedResources, resourceBaseline, startTcpServer, waitFor, type TestServer } from "@switchyard/test-utils";
import { OK_PAYLOAD, authResponseOf, cachingSha2Token, packet, startFakeMysql, type FakeMysql } from "./mysql-fake-backend.js";
import { connectError, myThrough, startMyProxy, type MyEnv } from "./mysql-helpers.js";

const NONCE = Buffer.from("abcdefghijklmnopqrst");

describe("MysqlProtocol authentication plugins (scripted backends)", () => {
  let env: MyEnv | undefined;
  let fake: FakeMysql | TestServer | undefined;

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

  it("relays caching_sha2_password fast authentication (AuthMoreData 0x03 then OK), renumbering sequence ids", async () => {
    const f = await startFakeMysql("caching_sha2_password", NONCE, (step, _seq, payload) => {
      if (step !== 0) return [];
      const ok = authResponseOf(payload).equals(cachingSha2Token("pw-sha2", NONCE));
      return ok ? [[2, Buffer.from([0x01, 0x03])], [3, OK_PAYLOAD]] : [[2, Buffer.from("\xff\x15\x04#28000denied", "latin1")]];
    });
    fake = f;
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${f.port}`] }]);
    const c = await myThrough(env.port(), { user: "u", password: "pw-sha2", database: "d" });
    await c.end();
    // the backend got its HandshakeResponse as packet 1, naming its own plugin
    const first = f.received[0]![0]!;
    expect(first.seq).to.equal(1);
    expect(first.payload.includes(Buffer.from("caching_sha2_password\0"))).to.equal(true);
    expect(first.payload.includes(Buffer.from("d\0"))).to.equal(true);
  });

  it("passes the backend's ERR for a wrong caching_sha2 token", async () => {
    const f = await startFakeMysql("caching_sha2_password", NONCE, (step, _seq, payload) => {
      if (step !== 0) return [];
      const ok = authResponseOf(payload).equals(cachingSha2Token("right", NONCE));
      return ok ? [[2, OK_PAYLOAD]] : [[2, Buffer.from("\xff\x15\x04#28000Access denied (fake)", "latin1")]];
    });
    fake = f;
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${f.port}`] }]);
    const err = await connectError(env.port(), { user: "u", password: "wrong", database: "d" });
    expect(err?.errno).to.equal(1045);
    expect(err?.message).to.contain("Access denied (fake)");
  });

  it("forwards a plugin the proxy does not know when client and backend agree on it", async () => {
    const f = await startFakeMysql("sy_test_plugin", NONCE, (step, _seq, payload) => {
      if (step === 0) return authResponseOf(payload).equals(Buffer.from("first:" + NONCE.toString())) ? [[2, Buffer.from("\x01more", "latin1")]] : [];
      if (step === 1) return payload.equals(Buffer.from("second:more")) ? [[4, OK_PAYLOAD]] : [];
      return [];
    });
    fake = f;
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${f.port}`] }]);
    const c = await myThrough(env.port(), {
      user: "u",
      database: "d",
      authPlugins: {
        sy_test_plugin: () => (data: Buffer) => {
          if (data.subarray(0, 4).toString() === "more") return Buffer.from("second:more");
          return Buffer.from("first:" + data.subarray(0, 20).toString());
        },
      },
    });
    await c.end();
    await waitFor(() => f.received[0]!.length === 3, 3000, "COM_QUIT to reach the backend");
    expect(f.received[0]!.map((p) => p.seq)).to.deep.equal([1, 3, 0]);
  });

  it("refuses caching_sha2 full authentication when the client leg is TLS and the backend leg is not", async () => {
    const f = await startFakeMysql("caching_sha2_password", NONCE, (step) => (step === 0 ? [[2, Buffer.from([0x01, 0x04])]] : []));
    fake = f;
    const ca = createTestCa();
    const cert = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${f.port}`] }], { tls: { cert: cert.cert, key: cert.key } });
    const err = await connectError(env.port(), { user: "u", password: "secret-pw", database: "d", ssl: { ca: ca.cert } });
    expect(err?.errno).to.equal(9002);
    // the password never reached the plaintext leg
    const seen = Buffer.concat(f.received[0]!.map((p) => p.payload));
    expect(seen.includes(Buffer.from("secret-pw"))).to.equal(false);
  });

  it("passes a backend's ERR greeting (1040 too many connections) with the client's sequence", async () => {
    const server = await startTcpServer((s) => s.end(packet(0, Buffer.from("\xff\x10\x04#08004Too many connections", "latin1"))));
    fake = server;
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${server.port}`] }]);
    const err = await connectError(env.port(), { user: "u", database: "d" });
    expect(err?.errno).to.equal(1040);
    expect(err?.message).to.equal("Too many connections");
  });

  it("refuses a backend that lacks a capability the client chose (CLIENT_SESSION_TRACK)", async () => {
    const nonce = randomBytes(20);
    const server = await startTcpServer((s) => {
      // a greeting without DEPRECATE_EOF (bit 24) and without SESSION_TRACK (bit 23)
      const g = Buffer.from(
        (s as unknown as { _g?: Buffer })._g ??
          Buffer.concat([packet(0, Buffer.concat([Buffer.from([10]), Buffer.from("5.5-old\0"), Buffer.from([1, 0, 0, 0]), nonce.subarray(0, 8), Buffer.from([0, 0xff, 0xf7, 45, 2, 0, 0x0f, 0x00, 21]), Buffer.alloc(10), nonce.subarray(8), Buffer.from([0]), Buffer.from("mysql_native_password\0")]))]),
      );
      s.write(g);
      s.on("data", () => {});
    });
    fake = server;
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${server.port}`] }]);
    const err = await connectError(env.port(), { user: "u", database: "d" });
    expect(err?.errno).to.equal(9002);
    // mysql2 asks for SESSION_TRACK (bit 23), which the greeting of this backend lacks
    const missing = Number.parseInt(/\(0x([0-9a-f]+)\)/.exec(err?.message ?? "")?.[1] ?? "0", 16);
    expect(missing).to.equal(1 << 23);
  });
});
