import { expect } from "chai";
import { createJsonLogger, Stage, type ProxyPlugin, type Resolver, type Route } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { expectNoActiveConnections, startProxy, type StartedProxy } from "@switchyard/test-utils";
import { closeAfterTest, request, startBackend } from "./helpers.js";

// Routes answered at run time — by a resolver or by a plugin's own onResolve tap — were never
// part of a checked config. A bad one fails its request with a status and a log line; the
// process goes on serving (before, a resolver's bad option was an unhandled rejection).

interface Logged {
  level: string;
  msg: string;
  [k: string]: unknown;
}

async function proxyWith(o: { resolver?: Resolver; plugins?: ProxyPlugin[] }): Promise<{ started: StartedProxy; logs: Logged[] }> {
  const logs: Logged[] = [];
  const started = await startProxy({
    listeners: [{ name: "web", protocol: "http", port: 0 }],
    plugins: [new HttpProtocol(), ...(o.plugins ?? [])],
    ...(o.resolver ? { resolver: o.resolver } : {}),
    ssrf: { disabled: true },
    logger: createJsonLogger((line) => logs.push(JSON.parse(line) as Logged), "debug"),
  });
  closeAfterTest({
    close: async () => {
      await started.proxy.close({ timeout: 1000 });
      await expectNoActiveConnections(started.proxy);
    },
  });
  return { started, logs };
}

describe("routes answered at run time", () => {
  it("answers 502 when a resolver's route has a bad option value, and keeps serving", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const target = `127.0.0.1:${backend.port}`;
    const { started, logs } = await proxyWith({
      resolver: {
        resolve: async (key) => ({ targets: [target], options: key.path === "/bad" ? { maxBodySize: "10k" } : { maxBodySize: 10 } }),
      },
    });
    const bad = await request(started.port(), { path: "/bad" });
    expect(bad.status).to.equal(502);
    expect(bad.body).to.match(/^502 Bad Gateway\nrequest id: /);
    const good = await request(started.port(), { path: "/good" });
    expect(good.status).to.equal(200);
    expect(good.body).to.equal("ok");
    // the good route's option is in force: a body over 10 bytes
    expect((await request(started.port(), { path: "/good", method: "POST", body: "x".repeat(11) })).status).to.equal(413);
    const closed = logs.filter((l) => l.msg === "connection.close" || String(l.error ?? "").includes("maxBodySize"));
    expect(JSON.stringify(closed)).to.include("maxBodySize must be a number >= 0");
  });

  it("serves a resolver's route with an undeclared option, logging it once", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const answer = { targets: [`127.0.0.1:${backend.port}`], name: "tenant-a", options: { tenant: "a" } };
    const { started, logs } = await proxyWith({ resolver: { resolve: async () => answer } });
    for (let i = 0; i < 3; i++) expect((await request(started.port())).status).to.equal(200);
    const warned = logs.filter((l) => l.msg === "route.unknown-options");
    expect(warned).to.have.length(1);
    expect(warned[0]!.problems).to.deep.equal([
      'route "tenant-a": options: unknown option "tenant" — no protocol or plugin on this route reads it',
    ]);
  });

  it("answers 500 when a plugin's onResolve tap returns a route that throws, and keeps serving", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const table: Route = {
      name: "broken",
      targets: [],
      lb: "round-robin",
      priority: 0,
      options: {},
      dynamic: false,
      balancer: {
        pick() {
          throw new Error("balancer bug");
        },
        acquire() {},
        release() {},
      },
    };
    const plugin: ProxyPlugin = {
      name: "BrokenRoutes",
      apply(proxy) {
        proxy.hooks.onResolve.tapPromise({ name: "BrokenRoutes", stage: Stage.ROUTE - 10 }, async ({ key }) =>
          key.path === "/broken" ? { route: table, params: {} } : undefined,
        );
      },
    };
    const { started, logs } = await proxyWith({
      plugins: [plugin],
      resolver: { resolve: async () => `127.0.0.1:${backend.port}` },
    });
    const res = await request(started.port(), { path: "/broken" });
    expect(res.status).to.equal(500);
    expect(logs.some((l) => l.msg === "http exchange failed" && String(l.error).includes("balancer bug"))).to.equal(true);
    expect((await request(started.port(), { path: "/fine" })).status).to.equal(200);
  });
});
