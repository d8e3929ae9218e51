/**
 * Audit of what the proxy forwards and relays: hop-by-hop headers (both directions), malformed
 * upstream framing (→ 502, socket not reused), 1xx with onUpstreamResponse taps, and
 * maxRequestsPerConnection.
 */
import { expect } from "chai";
import type { TestServer } from "@switchyard/test-utils";
import { isHttpRequest, isHttpResponse, type ProxyPlugin } from "./hook-helpers.js";
import { raw, request, startHttpProxy, statusOf, tcpServer, type Env } from "./helpers.js";

/** A raw backend that records every request head it gets and answers each with `answer`. */
async function recordingBackend(answer: string | ((head: string) => string)): Promise<{ tcp: TestServer; heads: string[] }> {
  const heads: string[] = [];
  const tcp = await tcpServer((s) => {
    let buf = "";
    s.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      let end: number;
      while ((end = buf.indexOf("\r\n\r\n")) !== -1) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        s.write(typeof answer === "string" ? answer : answer(head));
      }
    });
  });
  return { tcp, heads };
}

function headerLines(head: string): string[] {
  return head.split("\r\n").slice(1);
}

describe("audit: hop-by-hop headers", () => {
  let env: Env | undefined;

  it("drops Connection, the names it lists, Keep-Alive, Proxy-Connection, TE and Upgrade on the way up; keeps the rest in order", async () => {
    const { tcp, heads } = await recordingBackend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const out = await raw(
      env.port,
      "GET / HTTP/1.1\r\nHost: h\r\nX-Before: 1\r\nConnection: keep-alive, X-Secret, x-other\r\nKeep-Alive: timeout=5\r\nX-Secret: s\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-OTHER: o\r\nUpgrade: h2c\r\nX-After: 2\r\n\r\n",
      500,
    );
    expect(statusOf(out)).to.equal(200);
    expect(headerLines(heads[0]!)).to.deep.equal(["Host: h", "X-Before: 1", "X-After: 2"]);
  });

  it("drops the same hop-by-hop headers on the way down and states its own connection handling", async () => {
    const { tcp } = await recordingBackend(
      "HTTP/1.1 200 OK\r\nX-Before: 1\r\nConnection: X-Up-Secret, keep-alive\r\nKeep-Alive: timeout=5, max=100\r\nX-Up-Secret: s\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nTE: trailers\r\nX-After: 2\r\nContent-Length: 2\r\n\r\nok",
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    const head = out.slice(0, out.indexOf("\r\n\r\n"));
    expect(headerLines(head)).to.deep.equal(["X-Before: 1", "X-After: 2", "Content-Length: 2", "Connection: close"]);
  });

  it("replaces the upstream's Transfer-Encoding with its own framing (no duplicate or stacked codings)", async () => {
    const { tcp } = await recordingBackend("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect(out.match(/transfer-encoding/gi)).to.have.length(1);
    expect(out).to.match(/\r\n\r\n3\r\nabc\r\n0\r\n\r\n$/);
  });
});

describe("audit: malformed upstream framing", () => {
  let env: Env | undefined;

  const BAD: Array<[string, string]> = [
    ["two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"],
    ["a non-numeric Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok"],
    ["an obs-folded header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok"],
    ["an invalid header name", "HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 2\r\n\r\nok"],
    ["a NUL in a header value", "HTTP/1.1 200 OK\r\nX-A: 1\x002\r\nContent-Length: 2\r\n\r\nok"],
    ["HTTP/2.0 in the status line", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    ["a two-digit status", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"],
    ["600 header lines", `HTTP/1.1 200 OK\r\n${"X-A: 1\r\n".repeat(600)}Content-Length: 2\r\n\r\nok`],
  ];
  for (const [name, answer] of BAD) {
    it(`answers 502 for ${name} and does not reuse that socket`, async () => {
      const { tcp } = await recordingBackend(answer);
      env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
      const r = await request(env.port);
      expect(r.status).to.equal(502);
      expect(r.body).to.not.equal("ok");
      expect((await request(env.port)).status).to.equal(502);
      expect(tcp.accepted).to.equal(2);
    });
  }

  it("reads a response with both Content-Length and chunked as chunked, and does not reuse the socket", async () => {
    const { tcp } = await recordingBackend("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const r = await request(env.port);
    expect(r.status).to.equal(200);
    expect(r.body).to.equal("abc");
    expect(r.headers["content-length"]).to.equal(undefined);
    expect((await request(env.port)).body).to.equal("abc");
    expect(tcp.accepted).to.equal(2);
  });
});

describe("audit: 1xx with onUpstreamResponse taps", () => {
  let env: Env | undefined;

  it("relays a 103 while the tap sees only the final response, and offers no retry once the 103 went down", async () => {
    const { tcp } = await recordingBackend("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy");
    const seen: Array<{ status: number | undefined; retryable: boolean }> = [];
    const tap: ProxyPlugin = {
      name: "observe",
      apply(proxy) {
        proxy.hooks.onUpstreamResponse.tap("observe", (res) => {
          if (isHttpResponse(res)) {
            seen.push({ status: res.status, retryable: res.retryable });
            if (res.retryable) res.retry = { delayMs: 0, reason: "503" };
          }
          return res;
        });
      },
    };
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }], { plugins: [tap] });
    const out = await raw(env.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect([...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1])).to.deep.equal(["103", "503"]);
    expect(seen).to.deep.equal([{ status: 503, retryable: false }]);
    expect(tcp.accepted).to.equal(1);
  });
});

describe("audit: maxRequestsPerConnection", () => {
  let env: Env | undefined;

  it("answers the last allowed request with Connection: close and reads nothing after it", async () => {
    const { tcp, heads } = await recordingBackend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }], { listener: { maxRequestsPerConnection: 2 } });
    const out = await raw(env.port, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(out.match(/HTTP\/1\.1 200/g)).to.have.length(2);
    expect(out).to.match(/Connection: close\r\n\r\nok$/);
    expect(heads.map((h) => h.split(" ")[1])).to.deep.equal(["/1", "/2"]);
  });
});

describe("audit: bodiless statuses", () => {
  let env: Env | undefined;

  it("sends no Content-Length and no body with a 204, even when a sloppy upstream declares one", async () => {
    const { tcp } = await recordingBackend((head) =>
      head.startsWith("GET /204") ? "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n" : "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
    );
    env = await startHttpProxy([{ targets: [`127.0.0.1:${tcp.port}`] }]);
    const out = await raw(env.port, "GET /204 HTTP/1.1\r\nHost: h\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    const first = out.slice(0, out.indexOf("HTTP/1.1 200"));
    expect(first).to.match(/^HTTP\/1\.1 204 /);
    expect(first).to.not.match(/content-length/i);
    expect(first.endsWith("X-A: 1\r\n\r\n")).to.equal(true);
    expect(out).to.match(/\r\n\r\nnext$/);
  });

  it("writes no body after a 204 or 304 that an onRequest tap answers with one", async () => {
    const tap: ProxyPlugin = {
      name: "answer",
      apply(proxy) {
        proxy.hooks.onRequest.tap("answer", (req) => {
          if (isHttpRequest(req)) req.respond(req.url === "/304" ? 304 : 204, [["X-T", "1"]], "must not be sent");
          return req;
        });
      },
    };
    env = await startHttpProxy([{ targets: ["127.0.0.1:1"] }], { plugins: [tap] });
    const out = await raw(env.port, "GET /204 HTTP/1.1\r\nHost: h\r\n\r\nGET /304 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect([...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1])).to.deep.equal(["204", "304"]);
    expect(out).to.not.include("must not be sent");
    const first = out.slice(0, out.indexOf("HTTP/1.1 304"));
    expect(first).to.not.match(/content-length/i);
  });
});
