import { expect } from "chai";
import { isHttpRequest, Stage, type ProxyPlugin } from "@switchyard/core";
import { raw, startBackend, startHttpProxy, statusOf, type Backend } from "./helpers.js";

/** A deny-by-prefix plugin: 403 for anything under /admin, judged on `field` of the request. */
function denyAdmin(field: "url" | "path", seen: string[] = []): ProxyPlugin {
  return {
    name: "deny-admin",
    apply(proxy) {
      proxy.hooks.onRequest.tap({ name: "deny-admin", stage: Stage.ACCESS }, (req) => {
        if (!isHttpRequest(req)) return req;
        const p = req[field];
        seen.push(`${req.url} ${req.path}`);
        if (p === "/admin" || p.startsWith("/admin/") || p.startsWith("/admin?")) req.respond(403);
        return req;
      });
    },
  };
}

async function get(port: number, target: string): Promise<string> {
  return raw(port, `GET ${target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
}

const BYPASSES = ["/x/../admin", "/%61dmin", "/./admin/", "/%2E/admin", "/x/%2e%2E/admin/secret", "/ADMIN/../%61%64%6d%69%6e?q"];

describe("request-target normalisation (RFC 3986 §6.2.2)", () => {
  let backend: Backend;
  beforeEach(async () => {
    backend = await startBackend((req, res) => res.end(`got ${req.url}`));
  });

  it("a deny plugin on req.url sees the normalised target: every bypass shape gets its 403", async () => {
    const seen: string[] = [];
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { plugins: [denyAdmin("url", seen)] });
    for (const target of BYPASSES) expect(statusOf(await get(env.port, target)), target).to.equal(403);
    expect(backend.requests).to.have.length(0);
    expect(seen).to.include("/admin /admin").and.include("/admin/ /admin/").and.include("/admin?q /admin");
    expect(statusOf(await get(env.port, "/public"))).to.equal(200);
  });

  it("forwards the normalised target: dot segments gone, unreserved escapes decoded, other hex upper-cased, %2F kept", async () => {
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
    const cases: Array<[string, string]> = [
      ["/a/b/../c/./d", "/a/c/d"],
      ["/%7Euser/%41%2d%5f%2E", "/~user/A-_."],
      ["/a%2fb/%c3%a9?x=%2e%2e/y", "/a%2Fb/%C3%A9?x=%2e%2e/y"],
      ["/a/%2e%2e%2fb", "/a/..%2Fb"],
      ["/bad%zz/%4", "/bad%zz/%4"],
      ["/a/b/..", "/a/"],
    ];
    for (const [sent, forwarded] of cases) expect(await get(env.port, sent), sent).to.match(new RegExp(`got ${forwarded.replace(/[?.*+]/g, "\\$&")}$`));
  });

  it("routes on the normalised path: /%61pi/x goes to the /api route", async () => {
    const api = await startBackend((req, res) => res.end(`api ${req.url}`));
    const env = await startHttpProxy([
      { name: "api", match: { path: "/api" }, targets: [`127.0.0.1:${api.port}`] },
      { name: "rest", targets: [`127.0.0.1:${backend.port}`] },
    ]);
    expect(await get(env.port, "/%61pi/x")).to.match(/api \/api\/x$/);
    expect(await get(env.port, "/x/../api")).to.match(/api \/api$/);
  });

  it("normalizePath: false forwards the target as sent; req.path is normalised still, and a deny plugin on it holds", async () => {
    const seen: string[] = [];
    const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], {
      listener: { normalizePath: false },
      plugins: [denyAdmin("path", seen)],
    });
    for (const target of BYPASSES) expect(statusOf(await get(env.port, target)), target).to.equal(403);
    expect(seen).to.include("/x/../admin /admin").and.include("/%61dmin /admin");
    expect(await get(env.port, "/p/./%7Eq")).to.match(/got \/p\/\.\/%7Eq$/);
  });

  it("refuses normalizePath that is not a boolean", async () => {
    const err = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }], { listener: { normalizePath: "yes" as unknown as boolean } }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).to.match(/normalizePath must be true or false/);
  });
});
