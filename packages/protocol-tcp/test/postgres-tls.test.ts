import { expect } from "chai";
import { connect as tlsConnect } from "node:tls";
import type { CloseReason } from "@switchyard/core";
import { createTestCa, waitFor } from "@switchyard/test-utils";
import { PG_TARGET, pgThrough, startPgProxy, type PgEnv } from "./pg-helpers.js";

describe("PostgresProtocol TLS", () => {
  const ca = createTestCa();
  const cert = ca.issue({ commonName: "localhost", altNames: ["localhost", "127.0.0.1", "db.example.test"] });
  let env: PgEnv | undefined;

  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  it("terminates sslmode=require at the proxy (SSLRequest, then TLS in place) and routes by SNI", async () => {
    env = await startPgProxy(
      [
        { name: "by-sni", listener: "pg", match: { sni: "db.example.test" }, targets: [PG_TARGET] },
        { name: "plain", listener: "pg", targets: ["127.0.0.1:1"] },
      ],
      { tls: { cert: cert.cert, key: cert.key } },
    );
    const c = pgThrough(env.port(), { ssl: { ca: ca.cert, servername: "db.example.test" } });
    await c.connect();
    const stream = (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream;
    expect(stream.encrypted).to.equal(true);
    // the proxy's own leg to the server is plaintext: the server sees no TLS
    const r = await c.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()");
    expect(r.rows[0].ssl).to.equal(false);
    await c.end();
    expect(env.proxy.stats().routes["by-sni"]?.total).to.equal(1);
  });

  it("serves PostgreSQL 17 direct SSL (sslnegotiation=direct) with ALPN postgresql", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }], { tls: { cert: cert.cert, key: cert.key } });
    const c = pgThrough(env.port(), { ssl: { ca: ca.cert, servername: "localhost" }, sslnegotiation: "direct" } as never);
    await c.connect();
    expect((await c.query("select 42 as n")).rows[0].n).to.equal(42);
    await c.end();
  });

  it("refuses a direct TLS ClientHello whose ALPN is not postgresql", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }], { tls: { cert: cert.cert, key: cert.key } });
    const reasons: CloseReason[] = [];
    env.proxy.events.on("connectionClose", (_c, info) => reasons.push(info.reason));
    for (const alpn of [undefined, ["http/1.1"]]) {
      const s = tlsConnect({ host: "127.0.0.1", port: env.port(), ca: ca.cert, servername: "localhost", ...(alpn ? { ALPNProtocols: alpn } : {}) });
      let secure = false;
      s.on("secureConnect", () => (secure = true));
      s.on("error", () => {});
      await new Promise((r) => s.on("close", r));
      expect(secure && alpn !== undefined).to.equal(false);
    }
    await waitFor(() => reasons.length === 2, 3000, "both connections to close");
    expect(reasons.every((r) => r === "protocol-error" || r === "client-error")).to.equal(true);
  });

  it("refuses plaintext pipelined after SSLRequest (08P01)", async () => {
    env = await startPgProxy([{ listener: "pg", targets: [PG_TARGET] }], { tls: { cert: cert.cert, key: cert.key } });
    const { rawExchange, errorFields, startupPacket } = await import("./pg-helpers.js");
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    const got = await rawExchange(env.port(), Buffer.concat([ssl, startupPacket({ user: "postgres" })]));
    expect(errorFields(got).C).to.equal("08P01");
  });
});
