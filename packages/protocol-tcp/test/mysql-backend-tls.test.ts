import { expect } from "chai";
import { TLSSocket, createSecureContext } from "node:tls";
import { createTestCa, startTcpServer, type TestServer } from "@switchyard/test-utils";
import { OK_PAYLOAD, authResponseOf, cachingSha2Token, fakeGreeting, onPackets, packet } from "./mysql-fake-backend.js";
import { connectError, myThrough, startMyProxy, type MyEnv } from "./mysql-helpers.js";

const NONCE = Buffer.from("ABCDEFGHIJKLMNOPQRST");

interface TlsBackend extends TestServer {
  /** [seq, payload] of the packets received inside TLS */
  inside: Array<[number, Buffer]>;
  sslRequests: Buffer[];
}

/**
 * A caching_sha2_password backend offering CLIENT_SSL: it takes the SSLRequest (packet 1), TLS,
 * the HandshakeResponse (packet 2), asks for full authentication (AuthMoreData 0x04, as with
 * a cold cache), and accepts the cleartext password that then comes.
 */
async function startTlsMysql(cert: { cert: string; key: string }, offerTls: boolean, password: string): Promise<TlsBackend> {
  const inside: Array<[number, Buffer]> = [];
  const sslRequests: Buffer[] = [];
  const server = await startTcpServer((sock) => {
    sock.write(packet(0, fakeGreeting("caching_sha2_password", NONCE, offerTls)));
    sock.once("data", (data: Buffer) => {
      // the SSLRequest packet, possibly followed at once by the start of the ClientHello
      const first = data.subarray(0, 36);
      sslRequests.push(first);
      if (!offerTls) return void sock.end();
      // (paused first: unshifted bytes of a flowing socket would be emitted before TLS reads them)
      sock.pause();
      if (data.length > 36) sock.unshift(data.subarray(36));
      const tls = new TLSSocket(sock, { isServer: true, secureContext: createSecureContext(cert) });
      tls.on("error", () => {});
      onPackets(tls, (seq, payload) => {
        inside.push([seq, payload]);
        if (seq === 2) {
          // a cold cache: full authentication whatever the token (which must still be well formed)
          expect(authResponseOf(payload).length).to.equal(32);
          tls.write(packet(3, Buffer.from([1, 4])));
        } else if (seq === 4) {
          tls.write(payload.equals(Buffer.from(password + "\0")) ? packet(5, OK_PAYLOAD) : packet(5, Buffer.from("\xff\x15\x04#28000denied", "latin1")));
        } else if (seq === 0) tls.end();
      });
    });
  });
  return Object.assign(server, { inside, sslRequests });
}

describe("MysqlProtocol TLS to the backend (sslmode per route)", () => {
  const ca = createTestCa("MySQL CA");
  const cert = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1"] });
  let env: MyEnv | undefined;
  let backend: TlsBackend | undefined;

  afterEach(async () => {
    await env?.close();
    env = undefined;
    await backend?.close();
    backend = undefined;
  });

  it("TLS on both legs: caching_sha2 full authentication carries the password only inside TLS", async () => {
    backend = await startTlsMysql(cert, true, "pw-full");
    env = await startMyProxy(
      [{ listener: "my", targets: [{ host: "127.0.0.1", port: backend.port, tls: { ca: ca.cert, servername: "localhost" } }], options: { mysql: { sslmode: "verify-full" } } }],
      { tls: { cert: cert.cert, key: cert.key } },
    );
    const c = await myThrough(env.port(), { user: "u", password: "pw-full", database: "d", ssl: { ca: ca.cert } });
    await c.end();
    const [request] = backend.sslRequests;
    expect(request!.readUIntLE(0, 3)).to.equal(32);
    expect(request![3]).to.equal(1);
    expect(request!.readUInt32LE(4) & (1 << 11)).to.not.equal(0);
    expect(backend.inside.map(([seq]) => seq).slice(0, 2)).to.deep.equal([2, 4]);
    expect(backend.inside[1]![1].toString()).to.equal("pw-full\0");
    expect(backend.inside[0]![1].readUInt32LE(0) & (1 << 11)).to.not.equal(0);
  });

  it("full authentication over TLS on the backend leg only (client in plaintext)", async () => {
    backend = await startTlsMysql(cert, true, "pw-2");
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${backend.port}`], options: { mysql: { sslmode: "require" } } }]);
    // mysql2 sends the password in clear only on a connection it thinks secure: tell it so
    const c = await myThrough(env.port(), {
      user: "u",
      password: "pw-2",
      database: "d",
      authPlugins: {
        caching_sha2_password: () => {
          let step = 0;
          return (data: Buffer) => (step++ === 0 ? cachingSha2Token("not-the-password", data.subarray(0, 20)) : data[0] === 4 ? Buffer.from("pw-2\0") : null);
        },
      },
    });
    await c.end();
    expect(backend.inside.map(([seq]) => seq).slice(0, 2)).to.deep.equal([2, 4]);
  });

  it("sslmode require against a backend without CLIENT_SSL: ERR 9001, nothing sent but the refusal", async () => {
    backend = await startTlsMysql(cert, false, "x");
    env = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${backend.port}`], options: { mysql: { sslmode: "require" } } }]);
    const err = await connectError(env.port(), { user: "u", password: "x", database: "d" });
    expect(err?.errno).to.equal(9001);
    expect(err?.message).to.contain("does not offer TLS");
    expect(backend.sslRequests).to.deep.equal([]);
  });
});
