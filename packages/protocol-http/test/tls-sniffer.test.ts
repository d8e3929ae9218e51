import { expect } from "chai";
import { once } from "node:events";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { HttpSniffer } from "@switchyard/protocol-http";
import { createTestCa } from "@switchyard/test-utils";
import { request, startHttpProxy, type Env } from "./helpers.js";

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
