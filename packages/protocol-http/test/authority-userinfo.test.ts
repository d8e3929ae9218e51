import { expect } from "chai";
import { raw, startBackend, startHttpProxy, statusOf } from "./helpers.js";

// RFC 9110 §4.2.4: userinfo in an http(s) URI is an error. `http://a:80@evil/x` names the host
// "evil"; a proxy that routes or forwards it as Host is confused about where the request goes
describe("userinfo in the request's authority", () => {
  it("answers 400 to an absolute-form target with userinfo; neither backend sees the request", async () => {
    const good = await startBackend((req, res) => res.end(`good ${req.headers.host}`));
    const evil = await startBackend((req, res) => res.end(`evil ${req.headers.host}`));
    const env = await startHttpProxy([
      { name: "evil", match: { host: "evil" }, targets: [`127.0.0.1:${evil.port}`] },
      { name: "good", targets: [`127.0.0.1:${good.port}`] },
    ]);
    for (const target of ["http://a:80@evil/x", "http://user@evil/", "https://a@b@evil/x", "http://evil@a/"]) {
      const out = await raw(env.port, `GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect(statusOf(out), target).to.equal(400);
      expect(out, target).to.match(/Connection: close/);
    }
    expect(good.requests.length + evil.requests.length).to.equal(0);
    // the same target without userinfo is routed by its authority
    expect(await raw(env.port, "GET http://evil/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).to.match(/evil evil$/);
  });

  it("answers 400 to a Host header with userinfo", async () => {
    const backend = await startBackend((_req, res) => res.end("reached"));
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    expect(statusOf(await raw(env.port, "GET / HTTP/1.1\r\nHost: a:80@evil\r\n\r\n"))).to.equal(400);
    expect(backend.requests).to.have.length(0);
  });
});
