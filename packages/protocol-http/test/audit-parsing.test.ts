/**
 * Audit of the request-parsing bullets of PROTOCOL-NOTES "HTTP/1.1 reverse proxying": smuggling
 * shapes the first suite did not spell out, limits that 0 disables, 1xx relay policy, and header
 * case/order in the response direction. Every case checks the backend saw nothing it should not.
 */
import { expect } from "chai";
import http from "node:http";
import { sleep, type TestServer } from "@switchyard/test-utils";
import { raw, rawSocket, request, startBackend, startHttpProxy, statusOf, tcpServer, type Backend, type Env } from "./helpers.js";

const SHAPES: Array<[string, string]> = [
  ["Transfer-Encoding chunked, gzip (chunked not final)", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"],
  ["Transfer-Encoding chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"],
  ["Transfer-Encoding in an HTTP/1.0 request", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
  ["Transfer-Encoding with a vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"],
  ["Content-Length and a lower-case transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"],
  ["negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"],
  ["Content-Length with a trailing letter", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc"],
  ["obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n"],
  ["obs-fold on the first header line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"],
  ["bare LF ending one header line", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"],
  ["bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n"],
  ["bare CR ending a header line", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"],
  ["bare CR in a header name", "GET / HTTP/1.1\r\nHost: a\r\nX\rA: b\r\n\r\n"],
  ["bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"],
  ["header line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n"],
  ["tab before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n"],
  ["non-ASCII header name", "GET / HTTP/1.1\r\nHost: a\r\nX-\xe9: b\r\n\r\n"],
  ["duplicate Host in different case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"],
  ["duplicate Host with the same value", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"],
  ["chunk size with a sign", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n"],
];

describe("audit: request parsing", () => {
  let backend: Backend;
  let env: Env;
  before(async () => {
    backend = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => res.end("reached"));
    });
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
  });
  after(async () => {
    await env.close();
    await backend.close();
  });
  afterEach(() => {
    backend.requests.length = 0;
  });

  for (const [name, data] of SHAPES) {
    it(`answers 400 and closes for ${name}`, async () => {
      const out = await raw(env.port, data);
      expect(statusOf(out), out).to.equal(400);
      expect(out).to.match(/Connection: close/);
      expect(out).to.not.include("reached");
      expect(backend.requests.length).to.equal(0);
    });
  }

  it("answers 400 to chunk data longer than its size and cuts the upstream request it had started", async () => {
    // bodies stream: the first chunk may already be upstream, but that request must never complete
    const out = await raw(env.port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n");
    expect(statusOf(out), out).to.equal(400);
    expect(out).to.not.include("reached");
    await sleep(50);
    for (const r of backend.requests) expect(r.complete, "upstream request completed").to.equal(false);
  });

  it("accepts Transfer-Encoding: chunked in any letter case and forwards the body re-chunked", async () => {
    const out = await raw(env.port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    expect(statusOf(out)).to.equal(200);
    expect(backend.requests.length).to.equal(1);
    expect(backend.requests[0]!.headers["transfer-encoding"]).to.equal("chunked");
  });
});

describe("audit: limits that 0 disables", () => {
  let backend: Backend | undefined;
  let env: Env | undefined;

  it("maxHeaderCount: 0 and maxUrlLength: 0 mean no limit (as documented), not 'refuse everything'", async () => {
    backend = await startBackend((req, res) => res.end(`${req.url!.length}`));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { maxHeaderCount: 0, maxUrlLength: 0 } });
    let h = "";
    for (let i = 0; i < 150; i++) h += `X-${i}: v\r\n`;
    const many = await raw(env.port, `GET / HTTP/1.1\r\nHost: a\r\n${h}Connection: close\r\n\r\n`);
    expect(statusOf(many), many).to.equal(200);
    const long = await raw(env.port, `GET /${"u".repeat(9000)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect(statusOf(long), long.slice(0, 200)).to.equal(200);
    expect(long).to.match(/\r\n\r\n9001$/);
  });

  it("counts header lines from the default limit (100) with none configured", async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const lines = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join("");
    expect(statusOf(await raw(env.port, `GET / HTTP/1.1\r\nHost: a\r\n${lines(98)}Connection: close\r\n\r\n`))).to.equal(200);
    expect(statusOf(await raw(env.port, `GET / HTTP/1.1\r\nHost: a\r\n${lines(101)}\r\n`))).to.equal(431);
    expect(backend.requests.length).to.equal(1);
  });
});

describe("audit: 1xx interim responses", () => {
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  /** A backend that answers every request with `interim` then a final 200 "final". */
  async function interimBackend(interim: string): Promise<Env> {
    tcp = await tcpServer((s) => s.once("data", () => s.write(`${interim}HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal`)));
    return startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
  }

  it("relays several 1xx (103, 103, 102) to an HTTP/1.1 client in order, then the final response", async () => {
    env = await interimBackend("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b.js>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n");
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    expect(statuses).to.deep.equal(["103", "103", "102", "200"]);
    expect(out.indexOf("</a.css>")).to.be.lessThan(out.indexOf("</b.js>"));
    expect(out).to.match(/\r\n\r\nfinal$/);
  });

  it("drops 1xx for an HTTP/1.0 client (which cannot understand them) and sends only the final response", async () => {
    env = await interimBackend("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
    const out = await raw(env.port, "GET / HTTP/1.0\r\nHost: a\r\n\r\n");
    expect(out).to.match(/^HTTP\/1\.1 200 /);
    expect(out).to.not.include("103");
    expect(out).to.match(/\r\n\r\nfinal$/);
  });

  it("drops an unsolicited 100 Continue (no Expect sent) and never mistakes it for the final response", async () => {
    env = await interimBackend("HTTP/1.1 100 Continue\r\n\r\n");
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(out).to.match(/^HTTP\/1\.1 200 /);
    expect(out).to.not.include("100 Continue");
    expect(out).to.match(/\r\n\r\nfinal$/);
  });

  it("answers 502 to a 101 the client did not ask for", async () => {
    env = await interimBackend("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    expect((await request(env.port)).status).to.equal(502);
  });

  it("does not deadlock on Expect: 100-continue when the upstream answers with a final status instead of 100", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.write("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 2\r\n\r\nno")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    const out = await c.waitFor("no", 2000);
    expect(statusOf(out)).to.equal(417);
    expect(out).to.match(/Connection: close/); // the request body never came: the connection cannot be reused
    await c.closed;
  });
});

describe("audit: response header case, order and repeats", () => {
  let tcp: TestServer | undefined;
  let env: Env | undefined;

  it("relays the upstream's header names byte for byte, in order, with repeats unfolded", async () => {
    tcp = await tcpServer((s) =>
      s.once("data", () =>
        s.write(
          "HTTP/1.1 200 OK\r\nx-lower: 1\r\nX-UPPER: 2\r\nSet-Cookie: a=1; Path=/\r\nX-Mixed-Case: 3\r\nset-cookie: b=2, c=3\r\nX-UPPER: 4\r\nContent-Length: 2\r\n\r\nok",
        ),
      ),
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    const lines = out.slice(0, out.indexOf("\r\n\r\n")).split("\r\n").slice(1).filter((l) => !/^connection:/i.test(l));
    expect(lines).to.deep.equal(["x-lower: 1", "X-UPPER: 2", "Set-Cookie: a=1; Path=/", "X-Mixed-Case: 3", "set-cookie: b=2, c=3", "X-UPPER: 4", "Content-Length: 2"]);
  });

  it("keeps Node's client view of repeated Set-Cookie as separate values", async () => {
    tcp = await tcpServer((s) => s.once("data", () => s.write("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\nContent-Length: 0\r\n\r\n")));
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const r = await request(env.port, { agent: new http.Agent({ keepAlive: false }) });
    expect(r.headers["set-cookie"]).to.deep.equal(["a=1", "b=2", "c=3"]);
  });
});
