import { expect } from "chai";
import { once } from "node:events";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import tls from "node:tls";
import { HttpSniffer } from "@switchyard/protocol-http";
import { createTestCa, readAll } from "@switchyard/test-utils";
import { request, startBackend, startHttpProxy, statusOf, type Env } from "./helpers.js";

describe("https targets", () => {
  let server: https.Server | undefined;
  let env: Env | undefined;
  afterEach(async () => {
    await env?.close();
    server?.closeAllConnections();
    if (server) await new Promise<void>((r) => server!.close(() => r()));
    env = server = undefined;
  });

  it("verifies upstream certificates by default and accepts them with the right ca", async () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "localhost", altNames: ["localhost"] });
    server = https.createServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => res.end("secure"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    env = await startHttpProxy([
      { name: "untrusted", match: { path: "/untrusted" }, targets: [`https://127.0.0.1:${port}`] },
      { name: "trusted", targets: [{ host: "127.0.0.1", port, tls: { ca: ca.cert, servername: "localhost" } }] },
    ]);
    expect((await request(env.port, { path: "/untrusted" })).status).to.equal(502);
    const ok = await request(env.port, { path: "/ok" });
    expect(ok.status).to.equal(200);
    expect(ok.body).to.equal("secure");
  });
});

describe("TLS listener: SNI and Host", () => {
  /** One request over TLS with the given SNI; everything the proxy sent back. */
  async function tlsRequest(port: number, ca: string, servername: string, data: string): Promise<string> {
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca });
    s.on("error", () => {});
    await once(s, "secureConnect");
    const all = readAll(s as unknown as Socket);
    s.write(data);
    return (await all).toString("latin1");
  }

  it("answers 421 when no route matches and the SNI differs from Host, 404 when they agree", async () => {
    const backend = await startBackend((_req, res) => res.end("a"));
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "a.test", altNames: ["a.test", "b.test"] });
    const env = await startHttpProxy([{ match: { host: "a.test" }, targets: [`127.0.0.1:${backend.port}`] }], { tls: { cert: leaf.cert, key: leaf.key } });
    const get = (sni: string, host: string) => tlsRequest(env.port, ca.cert, sni, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(await get("a.test", "b.test"))).to.equal(421);
    expect(statusOf(await get("b.test", "b.test"))).to.equal(404);
    expect(statusOf(await get("b.test", "B.test:443"))).to.equal(404);
    expect(statusOf(await get("a.test", "a.test"))).to.equal(200);
    expect(backend.requests.length).to.equal(1);
  });
});

describe("HttpSniffer", () => {
  it("recognises request lines and refuses other protocols", () => {
    expect(HttpSniffer.sniff(Buffer.from("GET / HTTP/1.1\r\n"))).to.equal("http");
    expect(HttpSniffer.sniff(Buffer.from("OPTIONS * HTTP/1.1\r\n"))).to.equal("http");
    expect(HttpSniffer.sniff(Buffer.from("GET http://a/ HTTP/1.1\r\n"))).to.equal("http");
    expect(HttpSniffer.sniff(Buffer.from("GE"))).to.equal("need-more");
    expect(HttpSniffer.sniff(Buffer.from("GET "))).to.equal("need-more");
    expect(HttpSniffer.sniff(Buffer.from([0x16, 0x03, 0x01, 0x02]))).to.equal("not-http");
    expect(HttpSniffer.sniff(Buffer.from("EHLO example.com\r\n"))).to.equal("not-http");
    expect(HttpSniffer.sniff(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]))).to.equal("not-http");
  });
});
