import { expect } from "chai";
import { PluginError, Proxy, silentLogger, type RouteKey } from "@switchyard/core";
import { configErrorMessage, connectTo, expectNoActiveConnections, readAll, startProxy, type StartedProxy } from "@switchyard/test-utils";
import { LineProtocol } from "./line-protocol.js";

// Match keys registered by protocols: the route table compiles match fields by their kind, and
// the resolver cache keys by them.
describe("match keys registered by protocols", () => {
  const started: StartedProxy[] = [];
  afterEach(async () => {
    for (const p of started.splice(0)) {
      try {
        await expectNoActiveConnections(p.proxy);
      } finally {
        await p.proxy.close({ timeout: 100 });
      }
    }
  });

  async function ask(p: StartedProxy, line: string): Promise<string> {
    const s = await connectTo(p.port());
    s.write(`${line}\n`);
    return (await readAll(s)).toString().trim();
  }

  it("routes by a protocol's glob key (database, case-sensitive) and host-glob key (server)", async () => {
    const p = await startProxy({
      listeners: [{ name: "db", protocol: "kv", port: 0 }],
      routes: [
        { name: "apps", match: { database: "app_*", server: "*.example.com" }, targets: ["127.0.0.1:1"] },
        { name: "other", match: { database: "other" }, targets: ["127.0.0.1:1"] },
      ],
      plugins: [new LineProtocol({ name: "kv", matchKeys: { database: "glob", server: "host-glob" } })],
    });
    started.push(p);
    expect(p.proxy.matchKeys).to.deep.include.members([
      ["database", "glob"],
      ["server", "host-glob"],
    ]);
    expect(await ask(p, "database=app_7 server=db1.example.com")).to.equal("ROUTE apps");
    // host globs ignore case, a port and a trailing dot; they match one label per "*"
    expect(await ask(p, "database=app_7 server=DB1.Example.COM.:5432")).to.equal("ROUTE apps");
    expect(await ask(p, "database=app_7 server=a.db1.example.com")).to.equal("NOROUTE");
    // plain globs are case-sensitive
    expect(await ask(p, "database=APP_7 server=db1.example.com")).to.equal("NOROUTE");
    expect(await ask(p, "database=other")).to.equal("ROUTE other");
  });

  it("registers keys through proxy.registerMatchKey and recompiles the routes already there", () => {
    const routes = [{ name: "mx", match: { ehlo: "*.corp.test" }, targets: ["127.0.0.1:1"] }];
    const proxy = new Proxy({ listeners: [], routes, logger: silentLogger });
    const key = (ehlo: string): RouteKey => ({ listener: "l", protocol: "smtp", clientIp: "1.2.3.4", ehlo });
    // unregistered: a plain, case-sensitive glob
    expect(proxy.routes.match(key("MX.CORP.TEST"))).to.equal(undefined);
    proxy.registerMatchKey("ehlo", "host-glob");
    expect(proxy.routes.match(key("MX.CORP.TEST"))?.route.name).to.equal("mx");
    proxy.setRoutes(routes);
    expect(proxy.routes.match(key("mx.Corp.Test"))?.route.name).to.equal("mx");
  });

  it("refuses a key registered again with another kind, and bad names or kinds", () => {
    const proxy = new Proxy({ listeners: [], logger: silentLogger, plugins: [new LineProtocol({ name: "pg", matchKeys: { user: "glob" } })] });
    expect(() => proxy.registerMatchKey("user", "glob")).to.not.throw();
    expect(configErrorMessage(() => proxy.registerMatchKey("user", "host-glob"))).to.match(/match key "user" is already registered as "glob" by protocol "pg"/);
    expect(configErrorMessage(() => proxy.registerMatchKey("host", "glob"))).to.match(/"host" is already registered as "host-glob" by core/);
    expect(configErrorMessage(() => proxy.registerMatchKey("path", "glob"))).to.match(/reserved/);
    expect(configErrorMessage(() => proxy.registerMatchKey("x y", "glob"))).to.match(/identifier/);
    expect(configErrorMessage(() => proxy.registerMatchKey("tenant", "regex" as "glob"))).to.match(/kind must be/);
    // registered from a plugin's apply: the plugin is named
    expect(() => new Proxy({ listeners: [], logger: silentLogger, plugins: [new LineProtocol({ name: "a", matchKeys: { clientIp: "glob" } })] })).to.throw(
      PluginError,
      /plugin "a" failed in hook apply: protocol "a": match key "clientIp" is already registered as "cidr"/,
    );
  });

  it("keys the resolver cache by the match keys: host-glob values normalised, cidr keys left out", async () => {
    const asked: RouteKey[] = [];
    const p = await startProxy({
      listeners: [{ name: "db", protocol: "kv", port: 0 }],
      plugins: [new LineProtocol({ name: "kv", matchKeys: { database: "glob", server: "host-glob", origin: "cidr" } })],
      resolver: {
        resolve(key) {
          asked.push(key);
          return { name: `r-${key.database}`, targets: ["127.0.0.1:1"] };
        },
      },
      resolverCacheTtl: 60_000,
    });
    started.push(p);
    expect(await ask(p, "database=a server=DB.example.com origin=10.0.0.1")).to.equal("ROUTE r-a");
    expect(await ask(p, "database=a server=db.EXAMPLE.com:5432 origin=10.0.0.2")).to.equal("ROUTE r-a");
    expect(asked).to.have.length(1);
    expect(await ask(p, "database=A server=db.example.com")).to.equal("ROUTE r-A");
    expect(asked).to.have.length(2);
  });
});
