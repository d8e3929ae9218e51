import { expect } from "chai";
import { HttpProtocol } from "@switchyard/protocol-http";
import { HeadersPlugin } from "@switchyard/plugin-headers";
import { expectNoActiveConnections, header, headerNames, rawRequest, reply, startProxy, startRawBackend, type RawBackend, type StartedProxy } from "@switchyard/test-utils";

// CVE-2022-31813 class: the names a client's Connection header lists are the client's own
// hop-by-hop fields. They are removed from the client's message before taps run; the fields the
// proxy adds (plugin-headers' X-Forwarded-*, Via, a route's headers.set) reach the backend
describe("Connection-listed fields and the fields the proxy adds", () => {
  let backend: RawBackend | undefined;
  let started: StartedProxy | undefined;

  afterEach(async () => {
    if (started) await expectNoActiveConnections(started.proxy).finally(() => started!.proxy.close({ timeout: 100 }));
    await backend?.close();
    started = undefined;
    backend = undefined;
  });

  async function setup(resHeaders: Array<[string, string]> = []): Promise<number> {
    backend = await startRawBackend((_req, socket) => reply(socket, 200, resHeaders, "ok"));
    started = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [
        {
          name: "r",
          listener: "web",
          targets: [`127.0.0.1:${backend.port}`],
          options: {
            headers: {
              request: { set: { "X-Internal-Auth": "proxy-secret" } },
              response: { set: { "Strict-Transport-Security": "max-age=63072000" } },
            },
          },
        },
      ],
      plugins: [new HttpProtocol(), new HeadersPlugin()],
    });
    return started.port();
  }

  it("sends X-Forwarded-For, Via and the route's headers.set field when the client's Connection lists them", async () => {
    const port = await setup();
    const res = await rawRequest(
      port,
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For, Via, X-Internal-Auth, X-Forwarded-Proto\r\n" +
        "X-Forwarded-For: 6.6.6.6\r\nX-Internal-Auth: forged\r\n\r\n",
    );
    expect(res.status).to.equal(200);
    const seen = backend!.requests[0]!.headers;
    expect(header(seen, "x-forwarded-for")).to.equal("127.0.0.1");
    expect(header(seen, "x-forwarded-proto")).to.equal("http");
    expect(header(seen, "via")).to.equal("1.1 switchyard");
    // the route's value, once: the client's own field was hop-by-hop and went first
    expect(seen.filter(([k]) => k.toLowerCase() === "x-internal-auth").map(([, v]) => v)).to.deep.equal(["proxy-secret"]);
    expect(headerNames(seen)).to.not.include("connection");
  });

  it("still removes a listed field the client sent and no tap adds", async () => {
    const port = await setup();
    await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n");
    const seen = backend!.requests[0]!.headers;
    expect(headerNames(seen)).to.not.include("x-hop");
    expect(header(seen, "x-keep")).to.equal("2");
  });

  it("the same on the way down: an upstream's Connection cannot remove what onUpstreamResponse taps add", async () => {
    const port = await setup([
      ["Connection", "Strict-Transport-Security, Via, X-Upstream-Hop"],
      ["X-Upstream-Hop", "1"],
      ["X-Kept", "2"],
    ]);
    const res = await rawRequest(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(res.status).to.equal(200);
    expect(header(res.headers, "strict-transport-security")).to.equal("max-age=63072000");
    expect(header(res.headers, "via")).to.equal("1.1 switchyard");
    expect(headerNames(res.headers)).to.not.include("x-upstream-hop");
    expect(header(res.headers, "x-kept")).to.equal("2");
    expect(res.body).to.equal("ok");
  });
});
