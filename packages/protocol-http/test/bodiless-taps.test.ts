/**
 * An onUpstreamResponse tap that turns a response with a body into a 204, 304 or 1xx: the client
 * gets the head alone (a body would be read as its next response), the upstream body is drained
 * (bounded) so the pooled socket can serve the next request, or the socket is closed.
 */
import { expect } from "chai";
import type { Socket } from "node:net";
import { sleep, startRawBackend, waitFor, type RawBackend } from "@switchyard/test-utils";
import { isHttpResponse, type ProxyPlugin } from "./hook-helpers.js";
import { closeAfterTest, rawSocket, startHttpProxy, type Env } from "./helpers.js";

interface Parsed {
  /** the status line */
  line: string;
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

/** Splits a keep-alive byte stream into responses with the framing rules a client applies. */
function parseResponses(text: string, methods: string[]): Parsed[] {
  const out: Parsed[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) throw new Error(`incomplete head: ${JSON.stringify(rest)}`);
    const [first, ...lines] = rest.slice(0, end).split("\r\n");
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(first!);
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(first)} in ${JSON.stringify(text)}`);
    const status = +m[1]!;
    const headers = lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()] as [string, string]);
    rest = rest.slice(end + 4);
    const cl = headers.find(([k]) => k === "content-length");
    let body = "";
    if (status >= 200 && status !== 204 && status !== 304 && methods[out.length] !== "HEAD") {
      if (headers.some(([k]) => k === "transfer-encoding")) throw new Error("chunked not expected here");
      if (cl === undefined) throw new Error(`unframed ${status} response`);
      body = rest.slice(0, +cl[1]);
      rest = rest.slice(+cl[1]);
    }
    out.push({ line: first!, status, headers, body });
  }
  return out;
}

function tapStatus(status: number, delayMs = 0): ProxyPlugin {
  return {
    name: "status",
    apply(proxy) {
      proxy.hooks.onUpstreamResponse.tapPromise("status", async (res) => {
        if (delayMs > 0) await sleep(delayMs);
        if (isHttpResponse(res) && res.status === 200 && res.headers.some(([k, v]) => k === "X-Turn" && v === "yes")) res.status = status;
        return res;
      });
    },
  };
}

/** A backend answering "/first" with `first` (raw bytes, written in pieces) and anything else with "second". */
async function backendWith(first: string[], gapMs = 0): Promise<{ backend: RawBackend; closed: () => number }> {
  let closed = 0;
  const backend = await startRawBackend(
    (req, socket) => {
      if (!req.requestLine.startsWith("GET /first")) return void socket.write("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
      void (async () => {
        for (const piece of first) {
          socket.write(piece);
          if (gapMs > 0) await sleep(gapMs);
        }
      })();
    },
    (s: Socket) => void s.on("close", () => closed++),
  );
  closeAfterTest(backend);
  return { backend, closed: () => closed };
}

/** Two requests on one keep-alive connection, the second sent once the first answer arrived. */
async function twoRequests(env: Env): Promise<Parsed[]> {
  const c = await rawSocket(env.port);
  c.socket.write("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
  await c.waitFor("\r\n\r\n");
  await sleep(30);
  c.socket.write("GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
  await c.waitFor(/second$/);
  await sleep(30);
  const responses = parseResponses(c.received(), ["GET", "GET"]);
  c.socket.destroy();
  return responses;
}

const HEAD = "HTTP/1.1 200 OK\r\nX-Turn: yes\r\n";

describe("onUpstreamResponse taps making a response bodiless", () => {
  it("sends a tap's 204 without the upstream body or framing headers; the keep-alive connection and the drained upstream socket serve the next request", async () => {
    const { backend, closed } = await backendWith([`${HEAD}Content-Length: 5\r\n\r\nhello`]);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(204)] });
    const [first, second, ...more] = await twoRequests(env);
    expect(first!.status).to.equal(204);
    // the standard reason phrase, not the upstream's "OK"
    expect(first!.line).to.equal("HTTP/1.1 204 No Content");
    expect(first!.headers.map(([k]) => k)).to.include("x-turn").and.not.include.members(["content-length", "transfer-encoding"]);
    expect(second).to.deep.include({ status: 200, body: "second" });
    expect(more).to.deep.equal([]);
    expect(backend.sockets.length).to.equal(1);
    expect(closed()).to.equal(0);
  });

  it("keeps the upstream Content-Length on a tap's 304 (async tap, body already held) and reuses the socket", async () => {
    const { backend } = await backendWith([`${HEAD}Content-Length: 5\r\n\r\nhello`]);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(304, 40)] });
    const [first, second] = await twoRequests(env);
    expect(first!.status).to.equal(304);
    expect(first!.headers).to.deep.include(["content-length", "5"]);
    expect(second).to.deep.include({ status: 200, body: "second" });
    expect(backend.sockets.length).to.equal(1);
  });

  it("drains a chunked body arriving in pieces after the 204 went down, then reuses the socket", async () => {
    const { backend } = await backendWith([`${HEAD}Transfer-Encoding: chunked\r\n\r\n`, "5\r\nhello\r\n", "6\r\n world\r\n", "0\r\n\r\n"], 40);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(204)] });
    const c = await rawSocket(env.port);
    c.socket.write("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor("\r\n\r\n");
    expect(c.received()).to.match(/^HTTP\/1\.1 204 /);
    // the body is still coming: the socket is busy draining, not idle
    expect(env.protocol.poolStats(env.proxy.proxy)[0]).to.deep.include({ open: 1, idle: 0 });
    await waitFor(() => env.protocol.poolStats(env.proxy.proxy)[0]!.idle === 1);
    c.socket.write("GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor(/second$/);
    expect(parseResponses(c.received(), ["GET", "GET"]).map((r) => r.status)).to.deep.equal([204, 200]);
    expect(backend.sockets.length).to.equal(1);
    c.socket.destroy();
  });

  it("closes the upstream socket instead of draining a body larger than the limit", async () => {
    const { backend, closed } = await backendWith([`${HEAD}Content-Length: 300000\r\n\r\n`, "x".repeat(300_000)]);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(204)] });
    const [first, second] = await twoRequests(env);
    expect(first!.status).to.equal(204);
    expect(second).to.deep.include({ status: 200, body: "second" });
    expect(backend.sockets.length).to.equal(2);
    await waitFor(() => closed() === 1);
  });

  it("closes the upstream socket when the chunked body grows past the limit while draining", async () => {
    const big = "x".repeat(40_000);
    const chunk = `${big.length.toString(16)}\r\n${big}\r\n`;
    const { backend, closed } = await backendWith([`${HEAD}Transfer-Encoding: chunked\r\n\r\n`, chunk, chunk, chunk], 20);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(204)] });
    const [first, second] = await twoRequests(env);
    expect([first!.status, second!.status]).to.deep.equal([204, 200]);
    await waitFor(() => closed() === 1);
    expect(backend.sockets.length).to.equal(2);
  });

  it("counts body bytes a tap's stream already read against the drain limit", async () => {
    // 50 KB reach the tap's opened body stream before it turns the response into a 204; the
    // 30 KB still to come would fit a fresh 64 KiB drain but not what is left of it
    const piece = (n: number): string => `${n.toString(16)}\r\n${"x".repeat(n)}\r\n`;
    const { backend, closed } = await backendWith([`${HEAD}Transfer-Encoding: chunked\r\n\r\n${piece(50_000)}`, `${piece(30_000)}0\r\n\r\n`], 150);
    const opened: ProxyPlugin = {
      name: "open-body",
      apply(proxy) {
        proxy.hooks.onUpstreamResponse.tapPromise("open-body", async (res) => {
          if (!isHttpResponse(res) || !res.headers.some(([k]) => k === "X-Turn")) return res;
          let seen = 0;
          res.body!.on("data", (c: Buffer) => (seen += c.length));
          await waitFor(() => seen >= 50_000);
          res.status = 204;
          return res;
        });
      },
    };
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [opened] });
    const [first, second] = await twoRequests(env);
    expect([first!.status, second!.status]).to.deep.equal([204, 200]);
    // closed by the drain once the rest arrives, well before the pool's 3 s idle timeout
    await waitFor(() => closed() === 1, 1000, "the drained socket to close");
    expect(backend.sockets.length).to.equal(2);
    expect(env.protocol.poolStats(env.proxy.proxy)[0]).to.deep.include({ open: 1, idle: 1 });
  });

  it("closes the upstream socket for a close-delimited body and gives up a drain that stalls past bodyTimeout", async () => {
    const { backend, closed } = await backendWith([`${HEAD}Connection: keep-alive\r\n\r\nno length`]);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(204)] });
    const [first, second] = await twoRequests(env);
    expect([first!.status, second!.status]).to.deep.equal([204, 200]);
    await waitFor(() => closed() === 1);

    const stalled = await backendWith([`${HEAD}Content-Length: 10\r\n\r\nhalf`]);
    const env2 = await startHttpProxy([{ targets: [`127.0.0.1:${stalled.backend.port}`], options: { bodyTimeout: 150 } }], { plugins: [tapStatus(204)] });
    const [a, b] = await twoRequests(env2);
    expect([a!.status, b!.status]).to.deep.equal([204, 200]);
    await waitFor(() => stalled.closed() === 1);
    expect(env2.protocol.poolStats(env2.proxy.proxy)[0]).to.deep.include({ open: 1, idle: 1 });
  });

  it("declares an empty body (Content-Length: 0) when a tap turns an upstream 304 or 204 into a 200", async () => {
    for (const upstream of ["304 Not Modified\r\nX-Turn: yes\r\nContent-Length: 5", "204 No Content\r\nX-Turn: yes"]) {
      const { backend } = await backendWith([`HTTP/1.1 ${upstream}\r\n\r\n`]);
      const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], {
        plugins: [
          {
            name: "ok",
            apply: (proxy) =>
              proxy.hooks.onUpstreamResponse.tap("ok", (res) => {
                if (isHttpResponse(res) && res.headers.some(([k]) => k === "X-Turn")) res.status = 200;
                return res;
              }),
          },
        ],
      });
      const [first, second] = await twoRequests(env);
      expect(first).to.deep.include({ status: 200, body: "" });
      expect(first!.headers.filter(([k]) => k === "content-length")).to.deep.equal([["content-length", "0"]]);
      expect(second).to.deep.include({ status: 200, body: "second" });
      expect(backend.sockets.length).to.equal(1);
    }
  });

  it("sends a tap's 1xx in the final response's place without a body, then closes the client connection", async () => {
    const { backend } = await backendWith([`${HEAD}Content-Length: 5\r\n\r\nhello`]);
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [tapStatus(103)] });
    const c = await rawSocket(env.port);
    c.socket.write("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.closed;
    expect(c.received()).to.match(/^HTTP\/1\.1 103 [^\r]*\r\nX-Turn: yes\r\nConnection: close\r\n\r\n$/);
    await waitFor(() => env.proxy.proxy.stats().active === 0);
  });
});
