import { expect } from "chai";
import { ConfigError, ResolveError, RouteNotFoundError, RouteTable } from "@switchyard/core";
import { routeFromAnswer } from "../dist/routing/route-table.js";
import { MatchKeys } from "../dist/routing/match-keys.js";
import type { RouteConfig, RouteKey } from "@switchyard/core";

const key = (fields: Partial<RouteKey>): RouteKey => ({ listener: "web", protocol: "http", clientIp: "203.0.113.9", ...fields });
const nameOf = (t: RouteTable, k: Partial<RouteKey>) => t.match(key(k))?.route.name;

describe("routing: RouteTable construction", () => {
  it("compiles routes with defaults: name route-<index>, round-robin, priority 0, not dynamic", () => {
    const cfg: RouteConfig = { targets: ["a:1", "https://b"] };
    const t = new RouteTable([{ name: "x", targets: ["z:1"] }, cfg]);
    const r = t.routes[1];
    expect(r?.name).to.equal("route-1");
    expect(r?.lb).to.equal("round-robin");
    expect(r?.priority).to.equal(0);
    expect(r?.dynamic).to.equal(false);
    expect(r?.config).to.equal(cfg);
    expect(r?.targets).to.deep.equal([{ host: "a", port: 1 }, { host: "b", port: 443, scheme: "https", tls: {} }]);
    expect(Object.isFrozen(r)).to.equal(true);
    expect(r?.balancer.pick()).to.equal(r?.targets[0]);
  });

  it("rejects empty targets, naming the route", () => {
    expect(() => new RouteTable([{ name: "db", targets: [] }])).to.throw(ConfigError, /route "db".*at least one target/);
    expect(() => new RouteTable([{ targets: ["a:1"] }, { targets: [] }])).to.throw(ConfigError, /route "route-1"/);
  });

  it("rejects an unknown lb, bad targets and bad match fields, naming the route", () => {
    expect(() => new RouteTable([{ name: "r", targets: ["a:1"], lb: "fastest" as "random" }])).to.throw(
      ConfigError,
      /route "r".*unknown lb "fastest"/,
    );
    expect(() => new RouteTable([{ name: "r", targets: ["a"] }])).to.throw(ConfigError, /route "r".*missing port/);
    expect(() => new RouteTable([{ name: "r", targets: ["a:1"], match: { path: "api" } }])).to.throw(ConfigError, /route "r"/);
    expect(() => new RouteTable([{ name: "r", targets: ["a:1"], match: { clientIp: "10.0.0.0/40" } }])).to.throw(
      ConfigError,
      /route "r".*CIDR/,
    );
    expect(() => new RouteTable([{ name: "r", targets: ["a:1"], match: { host: [] } }])).to.throw(ConfigError, /match\.host/);
    expect(() => new RouteTable([{ name: "r", targets: ["a:1"], priority: Number.NaN }])).to.throw(ConfigError, /priority/);
  });

  it("rejects duplicate route names", () => {
    expect(() => new RouteTable([{ name: "a", targets: ["a:1"] }, { name: "a", targets: ["b:1"] }])).to.throw(
      ConfigError,
      /"a" is used twice/,
    );
  });
});

describe("routing: RouteTable matching", () => {
  it("matches every given field and fails when a required key field is undefined", () => {
    const t = new RouteTable([{ name: "pg", match: { database: "orders_*", user: "app" }, targets: ["db:5432"] }]);
    expect(nameOf(t, { database: "orders_eu", user: "app" })).to.equal("pg");
    expect(nameOf(t, { database: "orders_eu", user: "admin" })).to.equal(undefined);
    expect(nameOf(t, { database: "orders_eu" })).to.equal(undefined);
    expect(nameOf(t, { user: "app" })).to.equal(undefined);
  });

  it("matches host and sni as host globs, registered keys by their kind, others as plain globs", () => {
    const routes = [
      { name: "h", match: { host: "*.example.com" }, targets: ["a:1"] },
      { name: "s", match: { sni: "DB.internal" }, targets: ["a:1"] },
      { name: "e", match: { ehlo: "**.corp.test" }, targets: ["a:1"] },
      { name: "c", match: { tenant: "T?" }, targets: ["a:1"] },
    ];
    const keys = new MatchKeys();
    keys.register("ehlo", "host-glob", "smtp");
    const t = new RouteTable(routes, keys);
    expect(nameOf(t, { host: "API.example.com:8080" })).to.equal("h");
    expect(nameOf(t, { sni: "db.INTERNAL." })).to.equal("s");
    expect(nameOf(t, { ehlo: "mx1.eu.CORP.test" })).to.equal("e");
    expect(nameOf(t, { tenant: "T1" })).to.equal("c");
    expect(nameOf(t, { tenant: "t1" })).to.equal(undefined);
    // without the registration, ehlo is a plain (case-sensitive, label-blind) glob
    expect(nameOf(new RouteTable(routes), { ehlo: "mx1.eu.CORP.test" })).to.equal(undefined);
  });

  it("matches methods case-insensitively and client IPs by CIDR", () => {
    const t = new RouteTable([
      { name: "write", match: { method: ["post", "PUT"] }, targets: ["a:1"] },
      { name: "lan", match: { clientIp: ["10.0.0.0/8", "fd00::/8"] }, targets: ["a:1"] },
    ]);
    expect(nameOf(t, { method: "POST" })).to.equal("write");
    expect(nameOf(t, { method: "put" })).to.equal("write");
    expect(nameOf(t, { method: "GET" })).to.equal(undefined);
    expect(nameOf(t, { clientIp: "::ffff:10.2.3.4" })).to.equal("lan");
    expect(nameOf(t, { clientIp: "fd00::9" })).to.equal("lan");
    expect(nameOf(t, { clientIp: "11.0.0.1" })).to.equal(undefined);
  });

  it("returns path params and remainder, and no remainder without a path condition", () => {
    const t = new RouteTable([
      { name: "users", match: { path: "/users/:id/*" }, targets: ["a:1"] },
      { name: "api", match: { path: ["/api", "/v1/api"] }, targets: ["a:1"] },
      { name: "any", targets: ["a:1"] },
    ]);
    const u = t.match(key({ path: "/users/7/posts?x=1" }));
    expect(u?.route.name).to.equal("users");
    expect(u?.params).to.deep.equal({ id: "7", "*": "posts" });
    expect(u?.remainder).to.equal("/posts?x=1");
    expect(t.match(key({ path: "/v1/api/x" }))?.remainder).to.equal("/x");
    const any = t.match(key({ path: "/apix" }));
    expect(any?.route.name).to.equal("any");
    expect(any && "remainder" in any).to.equal(false);
    expect(any?.params).to.deep.equal({});
    expect(nameOf(t, {})).to.equal("any");
  });

  it("filters by listener", () => {
    const t = new RouteTable([
      { name: "admin", listener: "admin", targets: ["a:1"] },
      { name: "both", listener: ["web", "alt"], match: { host: "x.com" }, targets: ["a:1"] },
      { name: "all", targets: ["a:1"] },
    ]);
    expect(nameOf(t, { listener: "admin" })).to.equal("admin");
    expect(nameOf(t, { listener: "web" })).to.equal("all");
    expect(nameOf(t, { listener: "alt", host: "x.com" })).to.equal("both");
    expect(nameOf(t, { listener: "admin", host: "x.com" })).to.equal("admin");
    expect(nameOf(t, { listener: "other", host: "x.com" })).to.equal("all");
  });

  it("orders by priority first", () => {
    const t = new RouteTable([
      { name: "specific", match: { host: "a.example.com", path: "/api" }, targets: ["a:1"] },
      { name: "catch-all", priority: 10, targets: ["a:1"] },
    ]);
    expect(nameOf(t, { host: "a.example.com", path: "/api" })).to.equal("catch-all");
  });

  it("then by specificity: exact host over wildcard, more fields over fewer, longer prefix over shorter", () => {
    const t = new RouteTable([
      { name: "all", targets: ["a:1"] },
      { name: "wild", match: { host: "*.example.com" }, targets: ["a:1"] },
      { name: "wild+path", match: { host: "*.example.com", path: "/api" }, targets: ["a:1"] },
      { name: "exact", match: { host: "www.example.com" }, targets: ["a:1"] },
      { name: "wild+path2", match: { host: "*.example.com", path: "/api/v2" }, targets: ["a:1"] },
    ]);
    expect(nameOf(t, { host: "www.example.com", path: "/" })).to.equal("exact");
    expect(nameOf(t, { host: "b.example.com", path: "/" })).to.equal("wild");
    expect(nameOf(t, { host: "b.example.com", path: "/api/x" })).to.equal("wild+path");
    expect(nameOf(t, { host: "b.example.com", path: "/api/v2/x" })).to.equal("wild+path2");
    expect(nameOf(t, { host: "www.example.com", path: "/api" })).to.equal("wild+path");
    expect(nameOf(t, { host: "other.org" })).to.equal("all");
    expect(t.ordered.map((r) => r.name)).to.deep.equal(["wild+path2", "wild+path", "exact", "wild", "all"]);
  });

  it("then by declaration order", () => {
    const t = new RouteTable([
      { name: "first", match: { host: "*.a.com" }, targets: ["a:1"] },
      { name: "second", match: { host: "*.b.com" }, targets: ["a:1"] },
      { name: "third", match: { host: "*.a.com" }, targets: ["a:1"] },
    ]);
    expect(nameOf(t, { host: "x.a.com" })).to.equal("first");
    expect(t.ordered.map((r) => r.name)).to.deep.equal(["first", "second", "third"]);
  });

  it("routes declared order stays intact in .routes", () => {
    const t = new RouteTable([
      { name: "low", targets: ["a:1"] },
      { name: "high", priority: 5, targets: ["a:1"] },
    ]);
    expect(t.routes.map((r) => r.name)).to.deep.equal(["low", "high"]);
  });

  it("matchOrThrow throws RouteNotFoundError (NOT_FOUND)", () => {
    const t = new RouteTable([{ name: "x", match: { host: "x.com" }, targets: ["a:1"] }]);
    expect(t.matchOrThrow(key({ host: "x.com" })).route.name).to.equal("x");
    try {
      t.matchOrThrow(key({ host: "y.com" }));
      expect.fail("should throw");
    } catch (err) {
      expect(err).to.be.instanceOf(RouteNotFoundError);
      expect((err as ResolveError).code).to.equal("PRX_ERR_RESOLVE_NOT_FOUND");
      expect((err as Error).message).to.contain("y.com");
    }
  });
});

describe("routing: routeFromAnswer", () => {
  it("builds a dynamic route from a string, a target, a list or a route-like object", () => {
    const r1 = routeFromAnswer("a:1", "dyn");
    expect(r1.dynamic).to.equal(true);
    expect(r1.name).to.equal("dyn");
    expect(r1.targets).to.deep.equal([{ host: "a", port: 1 }]);
    expect(routeFromAnswer({ host: "b", port: 2 }, "d").targets).to.deep.equal([{ host: "b", port: 2 }]);
    expect(routeFromAnswer(["a:1", { host: "b", port: 2 }], "d").targets).to.have.length(2);
    const r4 = routeFromAnswer({ targets: ["a:1", "b:2"], lb: "least-connections", name: "named", options: { x: 1 } }, "d");
    expect(r4.name).to.equal("named");
    expect(r4.lb).to.equal("least-connections");
    expect(r4.options).to.deep.equal({ x: 1 });
  });

  it("throws ResolveError INTERNAL (cause ConfigError) on a malformed answer", () => {
    for (const bad of [[], "nope", { targets: ["a:1"], lb: "x" as "random" }]) {
      try {
        routeFromAnswer(bad, "d");
        expect.fail("should throw");
      } catch (err) {
        expect(err).to.be.instanceOf(ResolveError);
        expect((err as ResolveError).kind).to.equal("INTERNAL");
        expect((err as Error).cause).to.be.instanceOf(ConfigError);
      }
    }
  });

  it("reuses the route of an unchanged answer object so round-robin keeps rotating", () => {
    const answer = { targets: ["a:1", "b:1"] };
    const picks = [0, 1, 2, 3].map(() => routeFromAnswer(answer, "d").balancer.pick()?.host);
    expect(picks).to.deep.equal(["a", "b", "a", "b"]);
    answer.targets.push("c:1");
    expect(routeFromAnswer(answer, "d").targets).to.have.length(3);
  });
});
