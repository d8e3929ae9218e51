import { expect } from "chai";
import { ConfigError, Proxy, silentLogger, type Logger } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { raw, startBackend, startHttpProxy, statusOf } from "./helpers.js";

function body(out: string): string {
  return out.slice(out.indexOf("\r\n\r\n") + 4);
}

function idOf(out: string): string {
  return /X-Request-Id: (\S+)/.exec(out)?.[1] ?? "";
}

describe("error bodies", () => {
  it("say the status and the request id, nothing of the listener, host, route or upstream", async () => {
    const backend = await startBackend((_req, res) => res.end("x"));
    const env = await startHttpProxy([{ name: "only-api", match: { host: "api.internal", path: "/api" }, targets: [`127.0.0.1:${backend.port}`] }]);
    const notFound = await raw(env.port, "GET /nothing HTTP/1.1\r\nHost: secret.internal\r\nConnection: close\r\n\r\n");
    expect(statusOf(notFound)).to.equal(404);
    expect(body(notFound)).to.equal(`404 Not Found\nrequest id: ${idOf(notFound)}\n`);
    const bad = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    expect(statusOf(bad)).to.equal(400);
    expect(body(bad)).to.equal(`400 Bad Request\nrequest id: ${idOf(bad)}\n`);
  });

  it("the details go to the log line, under the request id the body names", async () => {
    const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
    const logger: Logger = { ...silentLogger, info: (msg, fields = {}) => void lines.push({ msg, fields }) };
    const env = await startHttpProxy([{ match: { host: "api.internal" }, targets: ["127.0.0.1:1"] }], { logger });
    const out = await raw(env.port, "GET /x HTTP/1.1\r\nHost: secret.internal\r\nConnection: close\r\n\r\n");
    expect(statusOf(out)).to.equal(404);
    const line = lines.find((l) => l.fields.id === idOf(out));
    expect(line?.msg).to.equal("request failed");
    expect(String(line?.fields.error)).to.include("secret.internal");
    const bad = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    expect(lines.find((l) => l.fields.id === idOf(bad))?.fields.error).to.equal("duplicate Host");
  });

  it("a listener's and a route's own bodies, with {status} and {requestId} filled in; the route's win for its status", async () => {
    const backend = await startBackend((_req, res) => res.end("x"));
    const env = await startHttpProxy(
      [
        { name: "api", match: { path: "/api" }, targets: ["127.0.0.1:1"], options: { errorBodies: { "502": { contentType: "application/json", body: '{"error":{status},"id":"{requestId}"}' } } } },
        { name: "web", match: { path: "/web" }, targets: [`127.0.0.1:${backend.port}`] },
      ],
      { listener: { errorBodies: { "404": "Nothing here (ref {requestId})\n", "502": "listener 502\n", "400": "{status}: check your client\n" } } },
    );
    const nf = await raw(env.port, "GET /else HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(statusOf(nf)).to.equal(404);
    expect(nf).to.match(/Content-Type: text\/plain; charset=utf-8\r\n/);
    expect(body(nf)).to.equal(`Nothing here (ref ${idOf(nf)})\n`);
    const bg = await raw(env.port, "GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(statusOf(bg)).to.equal(502);
    expect(bg).to.match(/Content-Type: application\/json\r\n/);
    expect(JSON.parse(body(bg))).to.deep.equal({ error: 502, id: idOf(bg) });
    // an error answered before any exchange (a malformed head) uses the listener's too
    const bad = await raw(env.port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    expect(statusOf(bad)).to.equal(400);
    expect(body(bad)).to.equal("400: check your client\n");
    // a HEAD gets the head alone, its Content-Length that of the configured body
    const head = await raw(env.port, "HEAD /else HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(/Content-Length: (\d+)\r\n/.exec(head)?.[1]).to.equal(String(Buffer.byteLength(`Nothing here (ref ${idOf(head)})\n`)));
    expect(body(head)).to.equal("");
  });

  it("refuses malformed errorBodies when the proxy is built", () => {
    const bad: unknown[] = [
      "x",
      { "200": "ok is not an error" },
      { "4xx": "x" },
      { "404": 1 },
      { "404": { body: "x", contentType: "text/html\r\nX-Evil: 1" } },
      { "404": { body: "x", type: "text/html" } },
      { "404": { contentType: "text/html" } },
    ];
    for (const errorBodies of bad) {
      expect(() => new HttpProtocol({ errorBodies } as never), JSON.stringify(errorBodies)).to.throw(ConfigError, /errorBodies/);
      expect(
        () => new Proxy({ logger: silentLogger, listeners: [{ name: "w", protocol: "http", port: 0 }], routes: [{ name: "r", targets: ["127.0.0.1:1"], options: { errorBodies } }], plugins: [new HttpProtocol()] }),
        JSON.stringify(errorBodies),
      ).to.throw(ConfigError, /errorBodies/);
    }
  });
});
