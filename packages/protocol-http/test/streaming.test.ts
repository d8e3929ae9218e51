import http from "node:http";
import { connect, createServer } from "node:net";
import { once } from "node:events";
import { expect } from "chai";
import { sleep, startRawBackend } from "@switchyard/test-utils";
import { closeAfterTest, rawSocket, startHttpProxy } from "./helpers.js";

// Response bodies stream: slices read together leave together (the client socket stays corked
// until the event loop's check phase), but nothing waits for more of the body to arrive.
describe("response body streaming", () => {
  it("forwards each body slice as it arrives, without waiting for the rest of the response", async () => {
    let clientGotFirst!: () => void;
    const firstSeen = new Promise<void>((r) => (clientGotFirst = r));
    const backend = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart1");
        // the rest only once the client has seen the first slice through the proxy
        void firstSeen.then(() => socket.write("part2"));
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const c = await rawSocket(env.port);
    c.socket.write("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    await c.waitFor("part1", 2000);
    expect(c.received()).to.not.include("part2");
    clientGotFirst();
    await c.waitFor(/part1part2$/, 2000);
    c.socket.end();
    await c.closed;
  });

  it("delivers a 1 MiB body read in many slices byte for byte, and the connection serves the next request", async () => {
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const backend = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
        socket.write(body);
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ body: Buffer; socket: unknown }>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port: env.port, path, agent }, (res) => {
            const parts: Buffer[] = [];
            res.on("data", (d: Buffer) => parts.push(d));
            res.on("end", () => resolve({ body: Buffer.concat(parts), socket: res.socket }));
          })
          .on("error", reject);
      });
    try {
      const first = await get("/a");
      expect(first.body.equals(body)).to.equal(true);
      const second = await get("/b");
      expect(second.body.equals(body)).to.equal(true);
      expect(second.socket, "the keep-alive connection served both").to.equal(first.socket);
    } finally {
      agent.destroy();
    }
  });
  it("stops reading the upstream while a client does not read: what it holds stays bounded, and the abort frees both sides", async () => {
    const total = 256 * 1024 * 1024;
    const piece = Buffer.alloc(256 * 1024, 0x61);
    let flushed = 0;
    let stalled = false;
    const backend = closeAfterTest(
      await startRawBackend((_req, socket) => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
        // write as fast as the proxy takes it, never past the socket's own backpressure
        const pump = (): void => {
          while (flushed < total && !socket.destroyed) {
            flushed += piece.length;
            if (!socket.write(piece)) {
              stalled = true;
              return void socket.once("drain", () => ((stalled = false), pump()));
            }
          }
        };
        pump();
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const client = connect({ port: env.port, host: "127.0.0.1" });
    client.on("error", () => {});
    await once(client, "connect");
    client.pause(); // never reads: only the kernel buffers take the response
    client.write("GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n");
    // once the buffers along the way are full, the backend waits for a drain that never comes
    let last = -1;
    while ((flushed !== last || !stalled) && flushed < total) {
      last = flushed;
      await sleep(200);
    }
    // socket buffers on loopback grow to a few MB each; a proxy that kept reading would have
    // taken all 256 MB
    expect(flushed).to.be.below(64 * 1024 * 1024);
    client.destroy();
    await env.close(); // asserts no connection is left active
  });
});

// Plain TCP upstream sockets read into one buffer shared by all of them (pool.ts, Node's
// `onread`): every byte kept past a read must be a copy, and a socket handed to a tunnel must
// turn back into an ordinary readable stream.
describe("upstream read buffer", () => {
  it("keeps every response's bytes while concurrent upstream reads reuse the read buffer", async () => {
    const size = 256 * 1024;
    const backend = closeAfterTest(
      await startRawBackend((req, socket) => {
        const fill = Number(/^GET \/(\d+)/.exec(req.requestLine)?.[1]);
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
        // in pieces, so reads of different upstream sockets interleave
        for (let off = 0; off < size; off += 16 * 1024) socket.write(Buffer.alloc(16 * 1024, fill));
      }),
    );
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const get = (n: number) =>
      new Promise<Buffer>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port: env.port, path: `/${n}`, agent }, (res) => {
            const parts: Buffer[] = [];
            // every other client reads late, so its response waits queued on the proxy's socket
            if (n % 2 === 0) {
              res.pause();
              setTimeout(() => res.resume(), 30);
            }
            res.on("data", (d: Buffer) => parts.push(d));
            res.on("end", () => resolve(Buffer.concat(parts)));
          })
          .on("error", reject);
      });
    try {
      for (let round = 0; round < 3; round++) {
        const ns = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => i + round * 8);
        const bodies = await Promise.all(ns.map(get));
        bodies.forEach((body, i) => {
          expect(body.length).to.equal(size);
          const wrong = body.findIndex((b) => b !== ns[i]);
          expect(wrong, `response ${ns[i]}: first byte not its own`).to.equal(-1);
        });
      }
    } finally {
      agent.destroy();
    }
  });

  it("tunnels over a pooled socket that served a request before, bytes copied both ways", async () => {
    // one upstream socket: a plain request, then an upgrade on the same connection, then echo
    let upstreamSockets = 0;
    const server = createServer((s) => {
      upstreamSockets++;
      s.on("error", () => {});
      let buf = "";
      let tunnel = false;
      s.on("data", (d: Buffer) => {
        if (tunnel) return void s.write(`echo:${d.toString("latin1")}`);
        buf += d.toString("latin1");
        let end: number;
        while (!tunnel && (end = buf.indexOf("\r\n\r\n")) >= 0) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          if (/^upgrade:/im.test(head)) {
            tunnel = true;
            s.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello-from-upstream;");
          } else s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain");
        }
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    closeAfterTest({ close: () => new Promise<void>((r) => server.close(() => r())) });
    const port = (server.address() as { port: number }).port;
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${port}`] }]);
    const first = await rawSocket(env.port);
    first.socket.write("GET /plain HTTP/1.1\r\nHost: a.test\r\n\r\n");
    await first.waitFor(/\r\n\r\nplain$/);
    first.socket.end();
    await first.closed;
    const c = await rawSocket(env.port);
    c.socket.write("GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
    await c.waitFor("hello-from-upstream;");
    for (const word of ["one", "two", "three"]) {
      c.socket.write(word);
      await c.waitFor(`echo:${word}`);
    }
    expect(upstreamSockets, "the tunnel reused the pooled socket").to.equal(1);
    c.socket.end();
    await c.closed;
    await env.close(); // asserts no connection is left active
  });
});
