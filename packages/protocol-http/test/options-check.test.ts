import { expect } from "chai";
import { ConfigError, Proxy, silentLogger, type ProxyOptions, type RouteConfig } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { configErrorMessage } from "@switchyard/test-utils";

// HTTP listener and route options are checked when the proxy is built: an unknown name (with a
// suggestion) or a bad value is a ConfigError then, not a failed connection or request later.

const web = (options?: Record<string, unknown>) => ({ name: "web", protocol: "http", host: "127.0.0.1", port: 0, ...(options ? { options } : {}) });
const route = (options: Record<string, unknown>, extra: Partial<RouteConfig> = {}): RouteConfig => ({
  name: "app",
  targets: ["http://127.0.0.1:1"],
  options,
  ...extra,
});

describe("HTTP options checks", () => {
  const built: Proxy[] = [];
  afterEach(async () => {
    await Promise.all(built.splice(0).map((p) => p.close({ timeout: 100 })));
  });
  const build = (o: Omit<ProxyOptions, "plugins">, protocol = new HttpProtocol()) => {
    const p = new Proxy({ logger: silentLogger, plugins: [protocol], ...o });
    built.push(p);
    return p;
  };

  it("rejects unknown constructor defaults with the closest name", () => {
    expect(configErrorMessage(() => new HttpProtocol({ headerTimeout: 5 } as never))).to.equal(
      'HttpProtocol: unknown option "headerTimeout" (did you mean "headersTimeout"?)',
    );
    expect(configErrorMessage(() => new HttpProtocol({ pool: { maxSocket: 2 } } as never))).to.equal(
      'HttpProtocol: unknown option "pool.maxSocket" (did you mean "pool.maxSockets"?)',
    );
    expect(configErrorMessage(() => new HttpProtocol({ pool: [] } as never))).to.equal("HttpProtocol: pool must be an object");
  });

  it("says maxPipelined was removed and why", () => {
    expect(configErrorMessage(() => new HttpProtocol({ maxPipelined: 4 } as never))).to.match(
      /^HttpProtocol: maxPipelined was removed: pipelined requests are served one at a time/,
    );
    expect(configErrorMessage(() => build({ listeners: [web({ maxPipelined: 4 })] }))).to.match(/^listener "web": options: maxPipelined was removed/);
  });

  it("fails new Proxy, not the first connection, on a bad listener option", () => {
    expect(configErrorMessage(() => build({ listeners: [web({ keepAliveTimout: 1 })] }))).to.equal(
      'listener "web": options: unknown option "keepAliveTimout" (did you mean "keepAliveTimeout"?)',
    );
    expect(configErrorMessage(() => build({ listeners: [web({ headersTimeout: "10s" })] }))).to.equal(
      'listener "web": options: headersTimeout must be a number >= 0',
    );
    expect(configErrorMessage(() => build({ listeners: [web({ hosts: "a.example" })] }))).to.equal(
      'listener "web": options: hosts must be a list of host globs',
    );
    expect(() => build({ listeners: [web({ headersTimeout: 1000, hosts: ["*.example"], pool: { maxSockets: 4 } })] })).to.not.throw();
  });

  it("fails new Proxy, not the first request, on a bad route option", () => {
    const listeners = [web()];
    expect(configErrorMessage(() => build({ listeners, routes: [route({ maxBodySize: -1 })] }))).to.equal(
      'route "app": options: maxBodySize must be a number >= 0',
    );
    expect(configErrorMessage(() => build({ listeners, routes: [route({ stripPrefix: 1 })] }))).to.equal(
      'route "app": options: stripPrefix must be a boolean or a string',
    );
    expect(configErrorMessage(() => build({ listeners, routes: [route({ expectContinue: "always" })] }))).to.equal(
      'route "app": options: expectContinue must be "relay" or "answer"',
    );
    expect(configErrorMessage(() => build({ listeners, routes: [route({ stripprefix: true })] }))).to.equal(
      'route "app": options: unknown option "stripprefix" (did you mean "stripPrefix"?) — no protocol or plugin on this route reads it',
    );
    // a plugin's key with no plugin to read it
    expect(configErrorMessage(() => build({ listeners, routes: [route({ retry: { retries: 2 } })] }))).to.match(
      /^route "app": options: unknown option "retry" — no protocol or plugin/,
    );
    expect(() => build({ listeners, routes: [route({ maxBodySize: 10, stripPrefix: "/api", rewrite: "/x", pool: { maxIdle: 1 } })] })).to.not.throw();
  });

  it("does not take HTTP route options on a route that only reaches a tcp listener", () => {
    const listeners = [web(), { name: "raw", protocol: "tcp", host: "127.0.0.1", port: 0 }];
    expect(configErrorMessage(() => build({ listeners, routes: [route({ maxBodySize: 10 }, { listener: "raw", targets: ["127.0.0.1:1"] })] }))).to.equal(
      'route "app": options: unknown option "maxBodySize" — no protocol or plugin on this route reads it',
    );
    expect(() => build({ listeners, routes: [route({ maxBodySize: 10 }, { listener: ["raw", "web"] })] })).to.not.throw();
  });

  it("checks listener options given later (reconfigureListener, addListener)", async () => {
    const p = build({ listeners: [web()] });
    await p.listen();
    expect(configErrorMessage(() => p.reconfigureListener("web", { options: { maxHeaderSize: "big" } }))).to.equal(
      'listener "web": options: maxHeaderSize must be a number >= 0',
    );
    let err: unknown;
    await p.addListener({ ...web({ lingerTimout: 5 }), name: "web2" }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as Error).message).to.equal('listener "web2": options: unknown option "lingerTimout" (did you mean "lingerTimeout"?)');
    expect(p.listeners.map((l) => l.name)).to.deep.equal(["web"]);
  });
});
