import { expect } from "chai";
import { startRawBackend } from "@switchyard/test-utils";
import { closeAfterTest, rawSocket, startHttpProxy } from "./helpers.js";

// How an upstream response body is delimited is decided once, from its head; the framer that
// reads the body follows that decision, so the proxy never reads one framing and sends another.

/** The data of a chunked body (no trailers). */
function dechunk(body: string): string {
  let out = "";
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    const size = parseInt(body.slice(at, eol), 16);
    if (size === 0) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

describe("upstream response framing", () => {
  for (const te of ["gzip, chunked", "gzip,chunked", "Chunked"]) {
    it(`reads a "Transfer-Encoding: ${te}" body as chunked (the last coding is chunked), so the keep-alive connection goes on`, async () => {
      const upstream = closeAfterTest(
        await startRawBackend((req, socket) => {
          const body = req.requestLine.includes("/first") ? "hello" : "again";
          socket.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
        }),
      );
      const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`] }]);
      const c = await rawSocket(env.port);
      c.socket.write("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
      // the client gets the upstream's data once, framed by the proxy: no chunk-size lines of
      // the upstream's inside the body, and the response ends (no wait for a close)
      const first = await c.waitFor("\r\n0\r\n\r\n", 2000);
      expect(first).to.match(/^HTTP\/1\.1 200 /);
      expect(first).to.include("\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
      expect(first).not.to.include("5\r\nhello\r\n0\r\n\r\n\r\n");
      c.socket.write("GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
      await c.waitFor("5\r\nagain\r\n0\r\n\r\n", 2000);
      // the upstream socket was reused: its first response ended where the chunked framing said
      expect(upstream.requests.length).to.equal(2);
      expect(upstream.sockets.length).to.equal(1);
      c.socket.destroy();
      await c.closed;
    });
  }

  it("reads a body whose last transfer coding is not chunked until the upstream closes, whatever Content-Length says", async () => {
    const upstream = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello, and the rest until the close");
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await c.waitFor("\r\n0\r\n\r\n", 2000);
    expect(out).to.match(/\r\nTransfer-Encoding: chunked\r\n/i);
    expect(dechunk(out.slice(out.indexOf("\r\n\r\n") + 4))).to.equal("hello, and the rest until the close");
    c.socket.destroy();
    await c.closed;
  });
});
