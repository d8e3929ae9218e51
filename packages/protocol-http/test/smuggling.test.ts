import { expect } from "chai";
import { raw, startBackend, startHttpProxy, statusOf, type Backend, type Env } from "./helpers.js";

const CASES: Array<[string, string]> = [
  ["Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
  ["duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"],
  ["invalid Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"],
  ["list Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"],
  ["Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"],
  ["Transfer-Encoding identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"],
  ["repeated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
  ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n  two\r\n\r\n"],
  ["bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\rtwo\r\n\r\n"],
  ["bare LF line ending", "GET / HTTP/1.1\nHost: a\n\n"],
  ["space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n"],
  ["invalid header name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"],
  ["duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"],
  ["missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"],
  ["invalid chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"],
  ["malformed request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"],
  ["dot segments above the root", "GET /public/../../admin HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["%2e dot segments above the root", "GET /%2e%2E/admin HTTP/1.1\r\nHost: a\r\n\r\n"],
];

describe("request smuggling shapes", () => {
  let backend: Backend;
  let env: Env;
  before(async () => {
    backend = await startBackend((_req, res) => res.end("reached"));
    env = await startHttpProxy([{ listener: "web", targets: [`127.0.0.1:${backend.port}`] }]);
  });
  after(async () => {
    await env.close();
    await backend.close();
  });

  for (const [name, data] of CASES) {
    it(`answers 400 and closes for ${name}`, async () => {
      const out = await raw(env.port, data);
      expect(statusOf(out), out).to.equal(400);
      expect(out).to.match(/Connection: close/);
      expect(out).to.match(/request id: /);
      expect(backend.requests.length).to.equal(0);
    });
  }

  it("answers 505 for HTTP/2.0 request lines", async () => {
    expect(statusOf(await raw(env.port, "GET / HTTP/2.0\r\nHost: a\r\n\r\n"))).to.equal(505);
  });

  it("answers 405 for CONNECT", async () => {
    expect(statusOf(await raw(env.port, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"))).to.equal(405);
  });

  it("refuses a body smuggled in a second request on the same connection", async () => {
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    expect(out).to.match(/^HTTP\/1\.1 200 /);
    expect(out).to.match(/HTTP\/1\.1 400 /);
    expect(backend.requests.length).to.equal(1);
    backend.requests.length = 0;
  });
});
