import { once } from "node:events";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { expect } from "chai";
import { ConfigError } from "@switchyard/core";
import {
  connectTo,
  createTestCa,
  readBytes,
  sleep,
  startEchoServer,
  waitClose,
  waitFor,
  useTcpFixture,
  type TestCa,
} from "@switchyard/test-utils";

// Listeners changed on a running proxy: added, removed (draining), certificates rotated,
// deadlines replaced — what `switchyard` applies on SIGHUP.
describe("listener changes while running", () => {
  const fx = useTcpFixture();
  let ca: TestCa;
  before(function () {
    this.timeout(30_000);
    ca = createTestCa();
  });

  async function echo(port: number, text = "ping"): Promise<string> {
    const c = await fx.client(port);
    c.write(text);
    const got = (await readBytes(c, text.length)).toString();
    c.end();
    return got;
  }

  it("adds a listener to a listening proxy and serves it at once", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await fx.proxyTo([`127.0.0.1:${backend.port}`]);
    p.proxy.setRoutes([{ name: "any", targets: [`127.0.0.1:${backend.port}`] }]);
    await p.proxy.addListener({ name: "extra", protocol: "tcp", host: "127.0.0.1", port: 0 });
    expect(await echo(p.port("extra"))).to.equal("ping");
    expect(await echo(p.port("tcp"))).to.equal("ping");
    await waitFor(() => p.proxy.stats().active === 0);
    expect(p.proxy.stats().listeners.extra?.total).to.equal(1);
    expect(p.proxy.listeners.map((l) => l.name)).to.deep.equal(["tcp", "extra"]);
    let err: unknown;
    await p.proxy.addListener({ name: "extra", protocol: "tcp", port: 0 }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(ConfigError);
  });

  it("removes a listener: refuses new clients, lets open ones finish until the deadline, keeps the others", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await fx.start({
      listeners: [
        { name: "a", protocol: "tcp", port: 0 },
        { name: "b", protocol: "tcp", port: 0 },
      ],
      routes: [{ name: "any", targets: [`127.0.0.1:${backend.port}`] }],
    });
    const portA = p.port("a");
    const open = await fx.client(portA);
    open.write("x");
    await readBytes(open, 1);
    const removed = p.proxy.removeListener("a", { timeout: 400 });
    await sleep(50);
    // still open during the grace period, and still relaying
    open.write("y");
    expect((await readBytes(open, 1)).toString()).to.equal("y");
    let refused = false;
    await connectTo(portA).then((s) => s.destroy(), () => (refused = true));
    expect(refused, "new connections to a removed listener are refused").to.equal(true);
    expect(await echo(p.port("b"))).to.equal("ping");
    // the name is free at once: remove + add moves a listener while its old connections drain
    await p.proxy.addListener({ name: "a", protocol: "tcp", host: "127.0.0.1", port: 0 });
    expect(p.port("a")).to.not.equal(portA);
    expect(await echo(p.port("a"))).to.equal("ping");
    open.write("z");
    expect((await readBytes(open, 1)).toString()).to.equal("z");
    await removed;
    await waitClose(open, 1000);
    await waitFor(() => p.proxy.stats().active === 0);
    expect(p.proxy.stats().closeReasons).to.include({ shutdown: 1 });
    expect(p.proxy.stats().listeners.a?.active).to.equal(0);
    expect(p.proxy.listeners.map((l) => l.name)).to.deep.equal(["b", "a"]);
  });

  it("rotates a listener's certificate for new handshakes; established TLS clients keep going", async () => {
    const backend = await fx.serve(startEchoServer());
    const first = ca.issue({ commonName: "svc.test" });
    const second = ca.issue({ commonName: "svc.test" }); // same name, another serial number
    const p = await fx.start({
      listeners: [{ name: "tls", protocol: "tcp", port: 0, tls: first }],
      routes: [{ name: "any", targets: [`127.0.0.1:${backend.port}`] }],
    });
    const port = p.port();
    const serial = async () => {
      const s: TLSSocket = tlsConnect({ port, host: "127.0.0.1", servername: "svc.test", ca: ca.cert });
      s.on("error", () => {});
      await once(s, "secureConnect");
      return { s, serial: s.getPeerCertificate().serialNumber };
    };
    const before = await serial();
    before.s.write("1");
    await readBytes(before.s, 1);
    p.proxy.reconfigureListener("tls", { tls: second });
    const after = await serial();
    expect(after.serial).to.not.equal(before.serial);
    // the connection made before the rotation still relays
    before.s.write("2");
    expect((await readBytes(before.s, 1)).toString()).to.equal("2");
    before.s.end();
    after.s.end();
    await Promise.all([waitClose(before.s), waitClose(after.s)]);
    // a broken certificate is refused and the listener keeps the working one
    expect(() => p.proxy.reconfigureListener("tls", { tls: { cert: "garbage", key: "garbage" } })).to.throw(ConfigError, /tls/);
    const again = await serial();
    expect(again.serial).to.equal(after.serial);
    again.s.end();
    await waitClose(again.s);
  });

  it("applies new deadlines to connections accepted after the change", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await fx.proxyTo([`127.0.0.1:${backend.port}`], { timeouts: { idle: 60_000 } });
    const old = await fx.client(p.port());
    old.write("a");
    await readBytes(old, 1);
    p.proxy.setTimeouts({ idle: 100 });
    expect(p.proxy.timeouts.idle).to.equal(100);
    const fresh = await fx.client(p.port());
    fresh.write("b");
    await readBytes(fresh, 1);
    await waitClose(fresh, 2000);
    // the connection established before the change keeps its idle deadline
    await sleep(150);
    expect(old.destroyed).to.equal(false);
    old.destroy();
    p.proxy.reconfigureListener("tcp", { timeouts: { idle: 80 } });
    const third = await fx.client(p.port());
    third.write("c");
    await readBytes(third, 1);
    await waitClose(third, 2000);
    await waitFor(() => p.proxy.stats().active === 0);
    expect(p.proxy.stats().closeReasons).to.include({ "idle-timeout": 2 });
  });

  it("refuses to add a listener whose port is taken, and names unknown listeners", async () => {
    const backend = await fx.serve(startEchoServer());
    const p = await fx.proxyTo([`127.0.0.1:${backend.port}`]);
    let err: unknown;
    await p.proxy.addListener({ name: "clash", protocol: "tcp", host: "127.0.0.1", port: p.port() }).catch((e: unknown) => (err = e));
    expect((err as NodeJS.ErrnoException)?.code).to.equal("EADDRINUSE");
    expect(p.proxy.listeners.map((l) => l.name)).to.deep.equal(["tcp"]);
    expect(() => p.proxy.reconfigureListener("nope", {})).to.throw(ConfigError, /nope/);
    await p.proxy.removeListener("nope").then(
      () => expect.fail("removing an unknown listener should fail"),
      (e: unknown) => expect(e).to.be.instanceOf(ConfigError),
    );
  });
});
