import { expect } from "chai";
import { raw, rawSocket, startBackend, startHttpProxy, statusOf } from "./helpers.js";

// Listener options changed on a running proxy (switchyard's SIGHUP reload) apply to connections
// accepted afterwards, whether the listener is reconfigured in place or re-added under its name.
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`;

describe("HttpProtocol with listeners changed while running", () => {
  const path = "/" + "x".repeat(60);

  it("uses a reconfigured listener's options for new connections", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const env = await startHttpProxy([{ name: "r", targets: [`127.0.0.1:${backend.port}`] }], { listener: { maxUrlLength: 1000 } });
    expect(statusOf(await raw(env.port, get(path)))).to.equal(200);
    env.proxy.proxy.reconfigureListener("web", { options: { maxUrlLength: 20 } });
    expect(statusOf(await raw(env.port, get(path)))).to.equal(414);
    expect(statusOf(await raw(env.port, get("/short")))).to.equal(200);
  });

  it("uses a re-added listener's options, not the removed one's", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const env = await startHttpProxy([{ name: "r", targets: [`127.0.0.1:${backend.port}`] }], { listener: { maxUrlLength: 20 } });
    expect(statusOf(await raw(env.port, get(path)))).to.equal(414);
    const p = env.proxy.proxy;
    await p.removeListener("web", { timeout: 100 });
    await p.addListener({ name: "web", protocol: "http", host: "127.0.0.1", port: 0, options: { maxUrlLength: 1000 } });
    expect(statusOf(await raw(p.address("web").port, get(path)))).to.equal(200);
  });
});

// Idle sessions hand their request framer back for reuse by any session: a reused framer must
// take on the limits of the listener it now serves, not keep the previous one's.
describe("HttpProtocol framer reuse across listeners", () => {
  it("applies each listener's own limits to framers handed from one connection to another", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const env = await startHttpProxy([{ name: "r", targets: [`127.0.0.1:${backend.port}`] }], { listener: { maxUrlLength: 1000 } });
    const p = env.proxy.proxy;
    await p.addListener({ name: "strict", protocol: "http", host: "127.0.0.1", port: 0, options: { maxUrlLength: 20 } });
    const long = "/" + "y".repeat(60);
    const keep = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a.test\r\n\r\n`;
    for (let round = 0; round < 3; round++) {
      // lenient listener: long URL fine, then its framer goes idle (back to the runtime)
      expect(statusOf(await raw(env.port, get(long)))).to.equal(200);
      expect(statusOf(await raw(p.address("strict").port, get(long)))).to.equal(414);
      expect(statusOf(await raw(p.address("strict").port, get("/ok")))).to.equal(200);
    }
    // and across kept-alive connections that go idle between requests (their framers move)
    const lenient = await rawSocket(env.port);
    const strict = await rawSocket(p.address("strict").port);
    const count = (text: string) => text.split("HTTP/1.1 ").length - 1;
    lenient.socket.write(keep("/first"));
    await lenient.waitFor(/HTTP\/1\.1 200[^]*ok$/);
    strict.socket.write(keep("/short"));
    await strict.waitFor(/HTTP\/1\.1 200[^]*ok$/);
    lenient.socket.write(keep(long));
    await lenient.waitFor(/(HTTP\/1\.1 [^]*){2}ok$/);
    expect(count(lenient.received())).to.equal(2);
    expect(lenient.received()).to.not.include("414");
    strict.socket.write(keep(long));
    await strict.waitFor("414");
    lenient.socket.end();
    await Promise.all([lenient.closed, strict.closed]);
  });
});
