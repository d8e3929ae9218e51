import { expect } from "chai";
import { raw, startBackend, startHttpProxy, statusOf, type Backend, type Env } from "./helpers.js";

async function get(port: number, target: string): Promise<string> {
  return raw(port, `GET ${target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
}

// a capture is never decoded into path syntax: `rewrite: "/static/*"` must not turn
// `/files/..%2f..%2fadmin/secret` into `/static/../../admin/secret`
describe("rewrite captures", () => {
  let backend: Backend;
  let env: Env;
  beforeEach(async () => {
    backend = await startBackend((req, res) => res.end(`got ${req.url}`));
    const t = [`127.0.0.1:${backend.port}`];
    env = await startHttpProxy([
      { name: "files", match: { path: "/files/*" }, targets: t, options: { rewrite: "/static/*" } },
      { name: "users", match: { path: "/u/:name/*" }, targets: t, options: { rewrite: "/users/:name/files/*" } },
    ]);
  });

  it("answers 400 to a * capture holding an encoded slash, and the backend gets nothing", async () => {
    for (const target of ["/files/..%2f..%2fadmin/secret", "/files/a%2Fb", "/files/..%5cadmin", "/u/x/..%2F..%2Fadmin"]) {
      expect(statusOf(await get(env.port, target)), target).to.equal(400);
    }
    expect(backend.requests).to.have.length(0);
  });

  it("answers 400 to a :name capture that held an encoded slash", async () => {
    for (const target of ["/u/..%2fadmin/x", "/u/a%2Fb/x"]) expect(statusOf(await get(env.port, target)), target).to.equal(400);
    expect(backend.requests).to.have.length(0);
  });

  it("forwards captures as the client sent them, other escapes and the query included", async () => {
    expect(await get(env.port, "/files/a/b%20c/d.txt?v=1")).to.match(/got \/static\/a\/b%20c\/d\.txt\?v=1$/);
    expect(await get(env.port, "/files/%40x/%3Fy")).to.match(/got \/static\/%40x\/%3Fy$/);
    expect(await get(env.port, "/u/j%C3%B6rg/a/b")).to.match(/got \/users\/j%C3%B6rg\/files\/a\/b$/);
    // a dot segment in the request itself is resolved before routing, as everywhere
    expect(await get(env.port, "/files/a/../b")).to.match(/got \/static\/b$/);
  });
});
