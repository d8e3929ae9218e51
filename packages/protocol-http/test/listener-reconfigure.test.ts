import { expect } from "chai";
import { raw, startBackend, startHttpProxy, statusOf } from "./helpers.js";

// Listener options changed on a running proxy (switchyard's SIGHUP reload) apply to connections
// accepted afterwards, whether the listener is reconfigured in place or re-added under its name.
describe("HttpProtocol with listeners changed while running", () => {
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`;
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
