import { expect } from "chai";
import {
  closestName,
  ConfigError,
  createJsonLogger,
  Proxy,
  silentLogger,
  type Connection,
  type ProtocolHandler,
  type ProxyPlugin,
  type ResolverAnswer,
  type RouteConfig,
} from "@switchyard/core";
import { configErrorMessage, connectTo, readBytes, startEchoServer, waitClose, waitFor } from "@switchyard/test-utils";

// Protocol and plugin options of listeners and routes are checked before anything uses them:
// a misspelt key or a bad value fails `new Proxy` (and setRoutes / addListener /
// reconfigureListener), never the first connection that reads it.

/** A plugin that reads `route.options.weight` (a number) and declares it. */
class WeightPlugin implements ProxyPlugin {
  readonly name = "WeightPlugin";
  readonly routeOptions = ["weight"];
  apply(): void {}
  checkRouteOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    if (options.weight !== undefined && typeof options.weight !== "number") throw new ConfigError(`${where}.weight: must be a number`);
  }
}

/** A protocol with one listener option ("greeting", a string) and one route option ("banner"). */
class ToyProtocol implements ProxyPlugin, ProtocolHandler {
  readonly name = "toy";
  readonly routeOptions = ["banner"];
  apply(proxy: Proxy): void {
    proxy.registerProtocol(this);
  }
  checkListenerOptions(options: Readonly<Record<string, unknown>>, where: string): void {
    for (const k of Object.keys(options)) if (k !== "greeting") throw new ConfigError(`${where}: unknown option "${k}"`);
    if (options.greeting !== undefined && typeof options.greeting !== "string") throw new ConfigError(`${where}: greeting must be a string`);
  }
  handle(conn: Connection): void {
    conn.destroy("done");
  }
}

const tcp = (options?: Record<string, unknown>) => ({ name: "t", protocol: "tcp", host: "127.0.0.1", port: 0, ...(options ? { options } : {}) });
const route = (options: Record<string, unknown>, extra: Partial<RouteConfig> = {}): RouteConfig => ({ name: "r", targets: ["127.0.0.1:1"], options, ...extra });

describe("options checks", () => {
  const proxies: Proxy[] = [];
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close({ timeout: 100 })));
  });
  const make = (o: ConstructorParameters<typeof Proxy>[0]) => {
    const p = new Proxy({ logger: silentLogger, ...o });
    proxies.push(p);
    return p;
  };

  it("suggests the closest known name (case-insensitive, at most two edits)", () => {
    expect(closestName("headerTimeout", ["headersTimeout", "bodyTimeout"])).to.equal("headersTimeout");
    expect(closestName("STRIPPREFIX", ["stripPrefix", "rewrite"])).to.equal("stripPrefix");
    expect(closestName("retires", ["retries", "retry"])).to.equal("retries");
    expect(closestName("completelyDifferent", ["retries", "retry"])).to.equal(undefined);
    expect(closestName("x", [])).to.equal(undefined);
  });

  it("rejects unknown options on a tcp listener, which takes only tlsPassthrough", () => {
    const msg = configErrorMessage(() => make({ listeners: [tcp({ idel: 5 })] }));
    expect(msg).to.equal('listener "t": options: unknown option "idel" (protocol "tcp" takes only tlsPassthrough)');
    expect(() => make({ listeners: [tcp({})] })).to.not.throw();
  });

  it("lets a protocol check its listener options, and reports every listener and route at once", () => {
    const msg = configErrorMessage(() =>
      make({
        listeners: [{ name: "a", protocol: "toy", port: 0, options: { greeting: 1 } }, { name: "b", protocol: "toy", port: 0, options: { greting: "hi" } }],
        routes: [route({ banner: "x", weigth: 2 })],
        plugins: [new ToyProtocol(), new WeightPlugin()],
      }),
    );
    expect(msg.split("\n")).to.deep.equal([
      'listener "a": options: greeting must be a string',
      'listener "b": options: unknown option "greting"',
      'route "r": options: unknown option "weigth" (did you mean "weight"?) — no protocol or plugin on this route reads it',
    ]);
  });

  it("knows a route option only from the protocols the route reaches and the plugins", () => {
    const listeners = [
      { name: "toy", protocol: "toy", port: 0 },
      { name: "raw", protocol: "tcp", port: 0 },
    ];
    const plugins = [new ToyProtocol(), new WeightPlugin()];
    // "banner" is the toy protocol's: fine on a route of the toy listener or of every listener ...
    expect(() => make({ listeners, plugins, routes: [route({ banner: "x", weight: 1 }, { listener: "toy" })] })).to.not.throw();
    expect(() => make({ listeners, plugins, routes: [route({ banner: "x" })] })).to.not.throw();
    // ... unknown on a route that only reaches the tcp listener
    expect(configErrorMessage(() => make({ listeners, plugins, routes: [route({ banner: "x", weight: 1 }, { listener: "raw" })] }))).to.equal(
      'route "r": options: unknown option "banner" — no protocol or plugin on this route reads it',
    );
    // a plugin's own check runs on every route
    expect(configErrorMessage(() => make({ listeners, plugins, routes: [route({ weight: "heavy" }, { listener: "raw" })] }))).to.equal(
      'route "r": options.weight: must be a number',
    );
  });

  it("leaves the routes of a listener whose protocol is not registered to listen(), which names the protocol", async () => {
    const p = make({ listeners: [{ name: "pg", protocol: "postgres", port: 0 }], routes: [route({ database: "x" })] });
    let err: unknown;
    await p.listen().catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as Error).message).to.match(/no protocol "postgres" is registered/);
  });

  it("checks a route naming a listener not there yet when that listener is added", async () => {
    const p = make({ listeners: [tcp()], plugins: [new ToyProtocol()] });
    // a reload sets routes before it adds listeners: the toy listener's route option is fine then ...
    p.setRoutes([route({ banner: "x" }, { listener: "later" })]);
    await p.addListener({ name: "later", protocol: "toy", port: 0 });
    expect(p.listeners.map((l) => l.name)).to.deep.equal(["t", "later"]);
    // ... and a listener whose protocol does not read it is refused when added
    p.setRoutes([route({ banner: "x" }, { listener: "tcp2" })]);
    let err: unknown;
    await p.addListener({ ...tcp(), name: "tcp2" }).catch((e: unknown) => (err = e));
    expect((err as Error).message).to.equal('route "r": options: unknown option "banner" — no protocol or plugin on this route reads it');
    expect(p.listeners.map((l) => l.name)).to.deep.equal(["t", "later"]);
  });

  it("checks a resolver's answered route once: a bad value fails that connection, an undeclared key is logged", async () => {
    const echo = await startEchoServer();
    try {
      const lines: Array<Record<string, unknown>> = [];
      const answers: Record<string, ResolverAnswer> = {
        "127.0.0.1": { targets: [`127.0.0.1:${echo.port}`], name: "dyn", options: { weight: 1, tenant: "a" } },
      };
      let bad = false;
      const p = make({
        listeners: [tcp()],
        plugins: [new WeightPlugin()],
        resolver: { resolve: async (key) => (bad ? { targets: [`127.0.0.1:${echo.port}`], name: "bad", options: { weight: "x" } } : answers[key.clientIp]!) },
        ssrf: { disabled: true },
        logger: createJsonLogger((l) => lines.push(JSON.parse(l) as Record<string, unknown>), "debug"),
      });
      const closes: string[] = [];
      p.events.on("connectionClose", (_c, info) => closes.push(`${info.reason}${info.error ? `: ${info.error.message}` : ""}`));
      await p.listen();
      for (let i = 0; i < 2; i++) {
        const c = await connectTo(p.address("t").port);
        c.write("hi");
        expect((await readBytes(c, 2)).toString()).to.equal("hi");
        c.end();
        await waitClose(c);
      }
      expect(lines.filter((l) => l.msg === "route.unknown-options").map((l) => l.problems)).to.deep.equal([
        ['route "dyn": options: unknown option "tenant" — no protocol or plugin on this route reads it'],
      ]);
      bad = true;
      const c = await connectTo(p.address("t").port);
      await waitClose(c);
      await waitFor(() => closes.length === 3);
      expect(closes[2]).to.equal('no-route: answered route has bad options: route "bad": options.weight: must be a number');
      expect(p.stats().active).to.equal(0);
    } finally {
      await echo.close();
    }
  });

  it("setRoutes, addListener and reconfigureListener refuse bad options and change nothing", async () => {
    const echo = await startEchoServer();
    try {
      const target = `127.0.0.1:${echo.port}`;
      const p = make({ listeners: [tcp()], routes: [{ name: "ok", targets: [target] }], plugins: [new WeightPlugin()] });
      await p.listen();

      expect(configErrorMessage(() => p.setRoutes([{ name: "new", targets: ["127.0.0.1:1"], options: { weight: "x" } }]))).to.equal(
        'route "new": options.weight: must be a number',
      );
      expect(p.routes.routes.map((r) => r.name)).to.deep.equal(["ok"]);

      let err: unknown;
      await p.addListener({ ...tcp({ nodelay: true }), name: "t2" }).catch((e: unknown) => (err = e));
      expect((err as Error).message).to.equal('listener "t2": options: unknown option "nodelay" (protocol "tcp" takes only tlsPassthrough)');
      expect(p.listeners.map((l) => l.name)).to.deep.equal(["t"]);

      expect(configErrorMessage(() => p.reconfigureListener("t", { options: { x: 1 } }))).to.match(/^listener "t": options: unknown option "x"/);
      expect(p.listeners[0]!.options).to.equal(undefined);

      // the proxy still serves with what it had
      const c = await connectTo(p.address("t").port);
      c.write("still");
      expect((await readBytes(c, 5)).toString()).to.equal("still");
      c.end();
      await waitClose(c);
      expect(p.stats().active).to.equal(0);
    } finally {
      await echo.close();
    }
  });
});
