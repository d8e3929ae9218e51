import { once } from "node:events";
import http from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { expect } from "chai";
import { encodeProxyHeaderV2, type ListenerConfig } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { createTestCa, expectNoActiveConnections, readAll, sleep, startProxy, type StartedProxy } from "@switchyard/test-utils";

/** PROXY protocol v1/v2 in front of an HTTP listener: the header's address is the client's. */
describe("PROXY protocol inbound (http listener)", () => {
  let proxy: StartedProxy | undefined;
  const servers: http.Server[] = [];
  const sockets: Socket[] = [];
  const seen: string[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    if (proxy) {
      const p = proxy.proxy;
      proxy = undefined;
      await expectNoActiveConnections(p).finally(() => p.close({ timeout: 100 }));
    }
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    seen.length = 0;
  });

  async function backend(name: string): Promise<number> {
    const s = http.createServer((req, res) => {
      req.resume();
      res.end(`${name}:${req.url}`);
    });
    s.listen(0, "127.0.0.1");
    await once(s, "listening");
    servers.push(s);
    return (s.address() as AddressInfo).port;
  }

  async function start(tls?: ListenerConfig["tls"]): Promise<number> {
    const a = await backend("A");
    const b = await backend("B");
    proxy = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0, proxyProtocol: { trustedProxies: ["127.0.0.1"], timeoutMs: 2000 }, ...(tls ? { tls } : {}) }],
      routes: [
        { name: "doc-net", listener: "web", match: { clientIp: "203.0.113.0/24" }, targets: [`127.0.0.1:${a}`] },
        { name: "rest", listener: "web", targets: [`127.0.0.1:${b}`] },
      ],
      plugins: [
        new HttpProtocol(),
        {
          name: "SeenBy",
          apply(p) {
            p.hooks.onRequest.tap("SeenBy", (req) => {
              seen.push(`${req.connection.clientIp}:${req.connection.clientPort}`);
              return req;
            });
          },
        },
      ],
    });
    return proxy.port("web");
  }

  async function rawClient(port: number, localAddress = "127.0.0.1"): Promise<Socket> {
    const s = connect({ port, host: "127.0.0.1", localAddress });
    s.on("error", () => {});
    sockets.push(s);
    await once(s, "connect");
    return s;
  }

  it("reads a v1 header split across writes, then the request: routed and seen by the header's address", async () => {
    const port = await start();
    const c = await rawClient(port);
    for (const piece of ["PRO", "XY TCP4 203.0.113.5 ", "192.0.2.1 51000 80\r", "\nGET /x HTTP/1.1\r\nHost: a\r\n", "Connection: close\r\n\r\n"]) {
      c.write(piece);
      await sleep(5);
    }
    const text = (await readAll(c)).toString();
    expect(text).to.match(/^HTTP\/1\.1 200/);
    expect(text.endsWith("A:/x")).to.equal(true);
    expect(seen).to.deep.equal(["203.0.113.5:51000"]);
  });

  it("reads a v2 header followed by two pipelined requests in the same write", async () => {
    const port = await start();
    const c = await rawClient(port);
    const header = encodeProxyHeaderV2({ source: { address: "203.0.113.6", port: 7 }, destination: { address: "192.0.2.1", port: 80 } });
    c.write(Buffer.concat([header, Buffer.from("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")]));
    const text = (await readAll(c)).toString();
    expect(text).to.include("A:/1");
    expect(text).to.include("A:/2");
    expect(seen).to.deep.equal(["203.0.113.6:7", "203.0.113.6:7"]);
  });

  it("hands an untrusted peer's header to HTTP as bytes (a bad request), never as an address", async () => {
    const port = await start();
    const c = await rawClient(port, "127.0.0.2");
    c.write("PROXY TCP4 203.0.113.5 192.0.2.1 51000 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const text = (await readAll(c)).toString();
    expect(text).to.match(/^HTTP\/1\.1 400/);
    expect(seen).to.deep.equal([]);
  });

  it("reads the header before the TLS handshake of an HTTPS listener", async () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: "web.example" });
    const port = await start({ cert: leaf.cert, key: leaf.key });
    const raw = await rawClient(port);
    raw.write("PROXY TCP4 203.0.113.8 192.0.2.1 4444 443\r\n");
    const tls = tlsConnect({ socket: raw, servername: "web.example", ca: ca.cert });
    tls.on("error", () => {});
    await once(tls, "secureConnect");
    tls.write("GET /tls HTTP/1.1\r\nHost: web.example\r\nConnection: close\r\n\r\n");
    const text = (await readAll(tls)).toString();
    expect(text.endsWith("A:/tls")).to.equal(true);
    expect(seen).to.deep.equal(["203.0.113.8:4444"]);
  });
});
