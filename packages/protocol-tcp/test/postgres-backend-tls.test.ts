import { expect } from "chai";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { TLSSocket, createSecureContext } from "node:tls";
import { createTestCa, expectNoLeakedResources, resourceBaseline, startTcpServer, waitFor, type TestServer } from "@switchyard/test-utils";
import { pgThrough, startPgProxy, startupPacket, type PgEnv } from "./pg-helpers.js";

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/**
 * A PostgreSQL-shaped backend that requires TLS by SSLRequest (or refuses it with N), then
 * answers a startup with AuthenticationSASL offering SCRAM-SHA-256-PLUS (user "sasl") or with
 * AuthenticationOk, BackendKeyData and ReadyForQuery.
 */
async function startTlsBackend(cert: { cert: string; key: string }, answer: "S" | "N"): Promise<TestServer & { startups: Buffer[]; alpn: Array<string | false | null> }> {
  const startups: Buffer[] = [];
  const alpn: Array<string | false | null> = [];
  const server = await startTcpServer((sock) => {
    sock.once("data", (first: Buffer) => {
      if (first.readInt32BE(4) !== 80877103) return void sock.destroy();
      sock.write(answer);
      // after N a client may go on in plaintext: anything that comes is recorded as a startup
      if (answer === "N") return void sock.on("data", (d: Buffer) => startups.push(d));
      const tls = new TLSSocket(sock, { isServer: true, secureContext: createSecureContext(cert), ALPNProtocols: ["postgresql"] });
      tls.on("error", () => {});
      tls.once("secure", () => alpn.push(tls.alpnProtocol));
      tls.once("data", (startup: Buffer) => {
        startups.push(startup);
        if (startup.includes(Buffer.from("user\0sasl\0"))) {
          tls.write(message("R", Buffer.concat([int32(10), Buffer.from("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")])));
          return;
        }
        tls.write(Buffer.concat([message("R", int32(0)), message("K", Buffer.concat([int32(99), int32(12345)])), message("Z", Buffer.from("I"))]));
        // the backend never closes first: only the proxy's close can free the session
        tls.on("data", () => {});
      });
    });
  });
  return Object.assign(server, { startups, alpn });
}

describe("PostgresProtocol TLS to the backend (sslmode per route)", () => {
  const ca = createTestCa("Backend CA");
  const cert = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
  let env: PgEnv | undefined;
  let backend: (TestServer & { startups: Buffer[]; alpn: Array<string | false | null> }) | undefined;

  afterEach(async () => {
    await env?.close();
    env = undefined;
    await backend?.close();
    backend = undefined;
  });

  it("sslmode require: SSLRequest, S, TLS on the same socket, then the startup inside TLS; no socket left open", async () => {
    const baseline = resourceBaseline();
    backend = await startTlsBackend(cert, "S");
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`], options: { postgres: { sslmode: "require" } } }]);
    const c = pgThrough(env.port());
    await c.connect();
    expect((c as unknown as { processID: number }).processID).to.not.equal(99);
    await c.end();
    expect(backend.startups).to.have.length(1);
    expect(backend.startups[0]!.includes(Buffer.from("user\0postgres\0"))).to.equal(true);
    expect(backend.alpn).to.deep.equal(["postgresql"]);
    await env.close();
    env = undefined;
    await backend.close();
    backend = undefined;
    await expectNoLeakedResources(baseline);
  });

  it("strips SCRAM-SHA-256-PLUS from the mechanisms the server offers", async () => {
    backend = await startTlsBackend(cert, "S");
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`], options: { postgres: { sslmode: "require" } } }]);
    const s: Socket = connect({ host: "127.0.0.1", port: env.port() });
    s.on("error", () => {});
    await once(s, "connect");
    s.write(startupPacket({ user: "sasl" }));
    const [reply] = (await once(s, "data")) as [Buffer];
    expect(reply[0]).to.equal(0x52);
    expect(reply.readInt32BE(5)).to.equal(10);
    expect(reply.subarray(9).toString().split("\0").filter(Boolean)).to.deep.equal(["SCRAM-SHA-256"]);
    expect(reply.readInt32BE(1)).to.equal(reply.length - 1);
    s.destroy();
  });

  // verify-full checks always; without sslmode a target with tls means TLS, checked by default
  for (const sslmode of ["verify-full", undefined] as const) {
    it(`sslmode ${sslmode ?? "absent"}: accepts the server's certificate from the target's tls ca, refuses another (08001)`, async () => {
      backend = await startTlsBackend(cert, "S");
      const options = sslmode === undefined ? {} : { options: { postgres: { sslmode } } };
      env = await startPgProxy([
        { name: "good", listener: "pg", match: { database: "good" }, targets: [{ host: "127.0.0.1", port: backend.port, tls: { ca: ca.cert, servername: "localhost" } }], ...options },
        { name: "bad", listener: "pg", match: { database: "bad" }, targets: [{ host: "127.0.0.1", port: backend.port, tls: { ca: createTestCa("Other CA").cert } }], ...options },
      ]);
      const good = pgThrough(env.port(), { database: "good" });
      await good.connect();
      await good.end();
      const bad = pgThrough(env.port(), { database: "bad" });
      const err = await bad.connect().then(() => undefined, (e: Error & { code?: string }) => e);
      expect(err?.code).to.equal("08001");
      expect(err?.message).to.contain("TLS");
      await waitFor(() => backend!.startups.length === 1, 1000, "only the verified session to send a startup");
    });
  }

  it("sslmode require against a server that answers N: 08001, and no startup sent in plaintext", async () => {
    backend = await startTlsBackend(cert, "N");
    env = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${backend.port}`], options: { postgres: { sslmode: "require" } } }]);
    const c = pgThrough(env.port());
    const err = await c.connect().then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal("08001");
    expect(err?.message).to.contain("does not accept TLS");
    expect(backend.startups).to.deep.equal([]);
  });

  it("points route keys ca / servername to the target's tls", async () => {
    let error: unknown;
    try {
      env = await startPgProxy([{ listener: "pg", targets: ["127.0.0.1:5432"], options: { postgres: { sslmode: "verify-full", ca: "x" } } }]);
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.contain("target's tls");
  });

  it("refuses an unknown sslmode at construction", async () => {
    let error: unknown;
    try {
      env = await startPgProxy([{ listener: "pg", targets: ["127.0.0.1:5432"], options: { postgres: { sslmode: "prefer" } } }]);
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.contain("sslmode");
  });
});
