import http from "node:http";
import { gzipSync, gunzipSync } from "node:zlib";
import { expect } from "chai";
import { startRawBackend } from "@switchyard/test-utils";
import { closeAfterTest, rawSocket, startHttpProxy } from "./helpers.js";

/** A text long enough for gzip to matter, and its gzip coding. */
const TEXT = "a body the upstream gzip-codes for the transfer, not for the content; ".repeat(200);
const GZIPPED = gzipSync(TEXT);

/** GET through node:http (llhttp removes the chunked framing; the other codings are the client's to undo). */
function get(port: number, path: string): Promise<{ status: number; te: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, te: res.headers["transfer-encoding"], body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** Undoes the transfer codings a response declares, as a client that supports gzip does. */
function decodeTransfer(te: string | undefined, body: Buffer): string {
  const codings = (te ?? "").split(",").map((c) => c.trim().toLowerCase()).filter((c) => c !== "" && c !== "chunked");
  let out = body;
  for (const c of codings.reverse()) {
    if (c !== "gzip") throw new Error(`unexpected transfer coding ${c}`);
    out = gunzipSync(out);
  }
  return out.toString("latin1");
}

/** `data` in chunks of `size` bytes, chunked-framed. */
function chunked(data: Buffer, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) {
    const piece = data.subarray(at, at + size);
    parts.push(Buffer.from(piece.length.toString(16) + "\r\n", "latin1"), piece, Buffer.from("\r\n", "latin1"));
  }
  parts.push(Buffer.from("0\r\n\r\n", "latin1"));
  return Buffer.concat(parts);
}

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

  it("keeps the gzip coding of a \"gzip, chunked\" body toward the client, which decodes it", async () => {
    const upstream = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.write(Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "latin1"), chunked(GZIPPED, 100)]));
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`] }]);
    const res = await get(env.port, "/");
    expect(res.status).to.equal(200);
    expect(res.te).to.equal("gzip, chunked");
    expect(decodeTransfer(res.te, res.body)).to.equal(TEXT);
  });

  it("re-frames a body whose last transfer coding is not chunked (read until the upstream closes, whatever Content-Length says) as its codings then chunked", async () => {
    const upstream = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n`, "latin1"), GZIPPED]));
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const out = await c.waitFor("\r\n0\r\n\r\n", 2000);
    const head = out.slice(0, out.indexOf("\r\n\r\n") + 2);
    expect(head).to.match(/\r\nTransfer-Encoding: gzip, chunked\r\n/);
    expect(head).not.to.match(/content-length/i);
    expect(decodeTransfer("gzip", Buffer.from(dechunk(out.slice(head.length + 2)), "latin1"))).to.equal(TEXT);
    // the client connection stays open: its framing is the proxy's, not the upstream's close
    expect(head).not.to.match(/\r\nConnection: close/i);
    c.socket.destroy();
    await c.closed;
  });

  it("answers 502 when a transfer-coded body would go to an HTTP/1.0 client (which cannot be sent Transfer-Encoding)", async () => {
    const upstream = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.write(Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "latin1"), chunked(GZIPPED, 1000)]));
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.0\r\n\r\n");
    await c.closed;
    expect(c.received()).to.match(/^HTTP\/1\.1 502 /);
    expect(c.received()).not.to.match(/transfer-encoding/i);
  });

  for (const te of ["chunked, gzip", "chunked, chunked"]) {
    it(`answers 502 to "Transfer-Encoding: ${te}" from the upstream (chunked applied before the last coding)`, async () => {
      const upstream = closeAfterTest(
        await startRawBackend((_req, socket) => {
          socket.end(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
        }),
      );
      const env = await startHttpProxy([{ targets: [`127.0.0.1:${upstream.port}`] }]);
      const c = await rawSocket(env.port);
      c.socket.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      const out = await c.waitFor(/\r\n\r\n/, 2000);
      expect(out).to.match(/^HTTP\/1\.1 502 /);
      c.socket.destroy();
      await c.closed;
    });
  }
});
