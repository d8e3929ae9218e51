import { expect } from "chai";
import { ConfigError } from "@switchyard/core";
import { compilePath } from "../dist/routing/path.js";

describe("routing: path prefixes", () => {
  const api = compilePath("/api");

  it("is a prefix when the pattern has no * or :", () => {
    expect(api.kind).to.equal("prefix");
    expect(compilePath("/users/:id").kind).to.equal("glob");
    expect(compilePath("/files/*").kind).to.equal("glob");
  });

  it("matches on segment boundaries", () => {
    expect(api.match("/api")).to.deep.equal({ params: {}, remainder: "/" });
    expect(api.match("/api/")).to.deep.equal({ params: {}, remainder: "/" });
    expect(api.match("/api/x")).to.deep.equal({ params: {}, remainder: "/x" });
    expect(api.match("/api/x/y")).to.deep.equal({ params: {}, remainder: "/x/y" });
    expect(api.match("/apix")).to.equal(null);
    expect(api.match("/ap")).to.equal(null);
    expect(api.match("/API")).to.equal(null);
    expect(api.match("/v1/api")).to.equal(null);
  });

  it("ignores the query string for matching and keeps it in the remainder", () => {
    expect(api.match("/api?q=1")).to.deep.equal({ params: {}, remainder: "/?q=1" });
    expect(api.match("/api/x?q=/a")).to.deep.equal({ params: {}, remainder: "/x?q=/a" });
    expect(api.match("/apix?q=/api")).to.equal(null);
  });

  it("treats a trailing slash in the pattern like none", () => {
    const p = compilePath("/api/");
    expect(p.match("/api")?.remainder).to.equal("/");
    expect(p.match("/api/v1")?.remainder).to.equal("/v1");
    expect(p.match("/apiv1")).to.equal(null);
  });

  it("/ matches every path and leaves it whole", () => {
    const root = compilePath("/");
    expect(root.match("/")?.remainder).to.equal("/");
    expect(root.match("/a/b?c")?.remainder).to.equal("/a/b?c");
    expect(root.match("*")).to.equal(null);
  });

  it("handles multi-segment prefixes", () => {
    const p = compilePath("/api/v2");
    expect(p.match("/api/v2/users")?.remainder).to.equal("/users");
    expect(p.match("/api/v20")).to.equal(null);
    expect(p.match("/api")).to.equal(null);
  });
});

describe("routing: path globs", () => {
  it("captures :params and the * rest", () => {
    const p = compilePath("/users/:id/*");
    expect(p.match("/users/42/posts/7?x=1")).to.deep.equal({
      params: { id: "42", "*": "posts/7" },
      remainder: "/posts/7?x=1",
    });
    expect(p.match("/users/42")).to.deep.equal({ params: { id: "42", "*": "" }, remainder: "/" });
    expect(p.match("/users/42/")).to.deep.equal({ params: { id: "42", "*": "" }, remainder: "/" });
    expect(p.match("/users")).to.equal(null);
    expect(p.match("/users/")).to.equal(null);
    expect(p.match("/members/42")).to.equal(null);
  });

  it("without a trailing * matches exactly (optional trailing slash)", () => {
    const p = compilePath("/users/:id");
    expect(p.match("/users/42")).to.deep.equal({ params: { id: "42" }, remainder: "/" });
    expect(p.match("/users/42/")).to.deep.equal({ params: { id: "42" }, remainder: "/" });
    expect(p.match("/users/42?a=b")).to.deep.equal({ params: { id: "42" }, remainder: "/?a=b" });
    expect(p.match("/users/42/x")).to.equal(null);
  });

  it("captures several params and percent-decodes them", () => {
    const p = compilePath("/orgs/:org/repos/:repo");
    expect(p.match("/orgs/acme%20inc/repos/web")?.params).to.deep.equal({ org: "acme inc", repo: "web" });
    expect(p.match("/orgs/bad%zz/repos/x")?.params).to.deep.equal({ org: "bad%zz", repo: "x" });
  });

  it("* inside a segment stays within the segment", () => {
    const p = compilePath("/files/*.png");
    expect(p.match("/files/cat.png")).to.not.equal(null);
    expect(p.match("/files/a/cat.png")).to.equal(null);
    expect(p.match("/files/cat.jpg")).to.equal(null);
    const mid = compilePath("/a/*/c");
    expect(mid.match("/a/b/c")).to.not.equal(null);
    expect(mid.match("/a/b/x/c")).to.equal(null);
  });

  it("a ? in the value ends the path even inside a segment", () => {
    expect(compilePath("/u/:id").match("/u/5?next=/u/6/7")?.params).to.deep.equal({ id: "5" });
  });

  it("rejects malformed patterns", () => {
    expect(() => compilePath("api")).to.throw(ConfigError, /start with "\/"/);
    expect(() => compilePath("/a?x=1")).to.throw(ConfigError, /query/);
    expect(() => compilePath("/a/:")).to.throw(ConfigError, /parameter/);
    expect(() => compilePath("/a/:id/:id")).to.throw(ConfigError, /repeats/);
  });

  it("scores longer literal prefixes and tighter globs higher", () => {
    const s = (p: string) => compilePath(p).score;
    expect(s("/api/v2")).to.be.above(s("/api"));
    expect(s("/api")).to.be.above(s("/"));
    expect(s("/users/:id")).to.be.above(s("/users/:id/*"));
    expect(s("/users/:id/*")).to.be.above(s("/users"));
    expect(s("/users/me")).to.be.above(s("/users/:id"));
  });
});
