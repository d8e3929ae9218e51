import { expect } from "chai";
import http from "node:http";
import type { TestServer } from "@switchyard/test-utils";
import { raw, rawSocket, request, startBackend, startHttpProxy, statusOf, tcpServer, type Backend, type Env } from "./helpers.js";

describe("HTTP framing", () => {
  let backend: Backend | undefined;
  let tcp: TestServer | undefined;
  let env: Env | undefined;
  const route = (port: number) => [{ listener: "web", targets: [`127.0.0.1:${port}`] }];

  it("relays a chunked response with trailers", async () => {
    backend = await startBackend((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain", Trailer: "X-Sum" });
      res.write("part1,");
      res.write("part2");
      res.addTrailers({ "X-Sum": "42" });
      res.end();
    });
    env = await startHttpProxy(route(backend.port));
    const trailers = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: env!.port, agent: false }, (res) => {
          let body = "";
          expect(res.headers["transfer-encoding"]).to.equal("chunked");
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve({ body, trailers: res.trailers }));
        })
        .on("error", reject);
    });
    expect(trailers.body).to.equal("part1,part2");
    expect(trailers.trailers["x-sum"]).to.equal("42");
  });

  it("re-frames a close-delimited response as chunked and never reuses that upstream socket", async () => {
    let conns = 0;
    tcp = await tcpServer((s) => {
      conns++;
      s.once("data", () => s.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close body"));
    });
    env = await startHttpProxy(route(tcp.port));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const r1 = await request(env.port, { agent });
    const r2 = await request(env.port, { agent });
    agent.destroy();
    expect(r1.body).to.equal("until-close body");
    expect(r1.headers["transfer-encoding"]).to.equal("chunked");
    expect(r2.body).to.equal("until-close body");
    expect(conns).to.equal(2);
  });

  it("answers 502 when the upstream closes before a complete head, and aborts the client on a truncated body", async () => {
    tcp = await tcpServer((s) => {
      s.once("data", (d: Buffer) => {
        if (d.toString().startsWith("GET /head")) s.end("HTTP/1.1 200 OK\r\nContent-Le");
        else s.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
      });
    });
    env = await startHttpProxy(route(tcp.port));
    const r = await request(env.port, { path: "/head" });
    expect(r.status).to.equal(502);
    const outcome = await new Promise<string>((resolve) => {
      http
        .get({ host: "127.0.0.1", port: env!.port, path: "/body", agent: false }, (res) => {
          res.on("data", () => {});
          res.on("aborted", () => resolve("aborted"));
          res.on("error", () => resolve("aborted"));
          res.on("end", () => resolve("ended"));
        })
        .on("error", () => resolve("error"));
    });
    expect(outcome).to.equal("aborted");
  });

  it("keeps Content-Length on HEAD without a body; 204 and 304 carry no body", async () => {
    backend = await startBackend((req, res) => {
      if (req.url === "/204") {
        res.writeHead(204);
        return res.end();
      }
      if (req.url === "/304") {
        // a sloppy upstream: Content-Length on a 304 must not make us wait for a body
        res.writeHead(304, { "Content-Length": "50", ETag: '"x"' });
        return res.end();
      }
      res.setHeader("Content-Length", "11");
      res.end(req.method === "HEAD" ? undefined : "hello there");
    });
    env = await startHttpProxy(route(backend.port));
    const s = await rawSocket(env.port);
    s.socket.write("HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await s.waitFor("hello there");
    s.socket.destroy();
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).to.deep.equal(["200", "204", "304", "200"]);
    const head = out.split("HTTP/1.1 204")[0]!;
    expect(head).to.match(/Content-Length: 11/i);
    expect(out.indexOf("hello there")).to.equal(out.lastIndexOf("hello there"));
    const after304 = out.split("HTTP/1.1 304")[1]!.split("HTTP/1.1 200")[0]!;
    expect(after304.endsWith("\r\n\r\n")).to.equal(true);
  });

  it("relays 103 Early Hints before the final response", async () => {
    backend = await startBackend((_req, res) => {
      res.writeEarlyHints({ link: "</style.css>; rel=preload" });
      setTimeout(() => res.end("final"), 20);
    });
    env = await startHttpProxy(route(backend.port));
    const got = await new Promise<{ info: number[]; body: string; link: string | undefined }>((resolve, reject) => {
      const info: number[] = [];
      let link: string | undefined;
      const req = http.get({ host: "127.0.0.1", port: env!.port, agent: false }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ info, body, link }));
      });
      req.on("information", (i) => {
        info.push(i.statusCode);
        link = i.headers.link as string | undefined;
      });
      req.on("error", reject);
    });
    expect(got.info).to.deep.equal([103]);
    expect(got.link).to.equal("</style.css>; rel=preload");
    expect(got.body).to.equal("final");
  });

  it("relays the upstream's 100 Continue for Expect: 100-continue", async () => {
    backend = await startBackend((req, res) => {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => res.end(`got ${n}`));
    });
    env = await startHttpProxy(route(backend.port));
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: env!.port, method: "PUT", agent: false, headers: { Expect: "100-continue", "Content-Length": "5" } }, (res) => {
        let b = "";
        res.on("data", (c) => (b += c));
        res.on("end", () => resolve(b));
      });
      req.on("continue", () => req.end("12345"));
      req.on("error", reject);
    });
    expect(body).to.equal("got 5");
  });

  it("answers 100 Continue itself with expectContinue: \"answer\"", async () => {
    tcp = await tcpServer((s) => {
      let buf = "";
      s.on("data", (d: Buffer) => {
        buf += d.toString();
        if (buf.endsWith("12345")) {
          expect(buf).to.not.match(/expect:/i);
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
      });
    });
    env = await startHttpProxy(route(tcp.port), { listener: { expectContinue: "answer" } });
    const s = await rawSocket(env.port);
    s.socket.write("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await s.waitFor("HTTP/1.1 100 Continue\r\n\r\n");
    s.socket.write("12345");
    const out = await s.waitFor("ok");
    s.socket.destroy();
    expect(statusOf(out.slice(out.indexOf("\r\n\r\n") + 4))).to.equal(200);
  });

  it("sends 100 Continue itself after expectContinueTimeout when the upstream waits for the body", async () => {
    // an upstream that never sends 100 (as HTTP/1.0 servers and some others): before, client and
    // upstream waited for each other until bodyTimeout, and the client was answered 408
    tcp = await tcpServer((s) => {
      let buf = "";
      s.on("data", (d: Buffer) => {
        buf += d.toString();
        if (buf.endsWith("12345")) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      });
    });
    env = await startHttpProxy(route(tcp.port), { listener: { expectContinueTimeout: 150, bodyTimeout: 5000 } });
    const s = await rawSocket(env.port);
    const t0 = Date.now();
    s.socket.write("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await s.waitFor("HTTP/1.1 100 Continue\r\n\r\n");
    expect(Date.now() - t0).to.be.within(100, 2000);
    s.socket.write("12345");
    const out = await s.waitFor("ok");
    s.socket.destroy();
    expect(out.match(/HTTP\/1\.1 \d+/g)).to.deep.equal(["HTTP/1.1 100", "HTTP/1.1 200"]);
  });

  it("sends no second 100 when the upstream's comes after the proxy's own", async () => {
    tcp = await tcpServer((s) => {
      let buf = "";
      s.on("data", (d: Buffer) => {
        buf += d.toString();
        if (buf.includes("\r\n\r\n") && !buf.includes("12345")) setTimeout(() => s.write("HTTP/1.1 100 Continue\r\n\r\n"), 300);
        if (buf.endsWith("12345")) setTimeout(() => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 400);
      });
    });
    env = await startHttpProxy(route(tcp.port), { listener: { expectContinueTimeout: 100 } });
    const s = await rawSocket(env.port);
    s.socket.write("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await s.waitFor("HTTP/1.1 100 Continue\r\n\r\n");
    s.socket.write("12345");
    const out = await s.waitFor("ok", 3000);
    s.socket.destroy();
    expect(out.match(/HTTP\/1\.1 \d+/g)).to.deep.equal(["HTTP/1.1 100", "HTTP/1.1 200"]);
  });

  it("blames the upstream (504), not the waiting client, when no 100 comes and the proxy may not send one", async () => {
    tcp = await tcpServer(() => {}); // reads the head, waits for a body forever
    env = await startHttpProxy(route(tcp.port), { listener: { expectContinueTimeout: 0, bodyTimeout: 300 } });
    const s = await rawSocket(env.port);
    s.socket.write("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    const out = await s.waitFor(/\r\n\r\n[^]*request id/, 3000);
    expect(statusOf(out)).to.equal(504);
    s.socket.destroy();
  });

  it("removes the fields a 103 or a 101 names in Connection", async () => {
    tcp = await tcpServer((s) =>
      s.on("data", (d: Buffer) => {
        if (d.toString().startsWith("GET /ws")) {
          s.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-Secret\r\nUpgrade: echo\r\nX-Secret: 1\r\nX-Kept: 1\r\n\r\n");
          return;
        }
        s.write("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: x-internal\r\nX-Internal: secret\r\n\r\n");
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }),
    );
    env = await startHttpProxy(route(tcp.port));
    const hints = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(hints).to.match(/^HTTP\/1\.1 103 [^]*\r\nLink: <\/a\.css>; rel=preload\r\n/);
    expect(hints).to.not.match(/x-internal/i);
    expect(statusOf(hints.slice(hints.indexOf("\r\n\r\n") + 4))).to.equal(200);
    const ws = await raw(env.port, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", 300);
    expect(ws).to.match(/^HTTP\/1\.1 101 /);
    expect(ws).to.include("X-Kept: 1").and.not.to.match(/x-secret/i);
  });

  it("keeps header case, order and repeats in both directions", async () => {
    backend = await startBackend((req, res) => {
      res.setHeader("Set-Cookie", ["a=1", "b=2"]);
      res.end(JSON.stringify(req.rawHeaders));
    });
    env = await startHttpProxy(route(backend.port));
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: h\r\nX-CaSe: 1\r\nx-dup: a\r\nX-Dup: b\r\nConnection: close\r\n\r\n");
    expect(out).to.include("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n");
    const seen = JSON.parse(out.slice(out.indexOf("\r\n\r\n") + 4)) as string[];
    expect(seen).to.deep.equal(["Host", "h", "X-CaSe", "1", "x-dup", "a", "X-Dup", "b"]);
  });

  it("accepts absolute-form targets: the authority becomes Host and the path is forwarded", async () => {
    backend = await startBackend((req, res) => res.end(`${req.headers.host} ${req.url}`));
    env = await startHttpProxy([{ listener: "web", match: { host: "example.com" }, targets: [`127.0.0.1:${backend.port}`] }]);
    const out = await raw(env.port, "GET http://example.com/x?y=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n");
    expect(out).to.match(/example\.com \/x\?y=1$/);
  });
});
