import { expect } from "chai";
import { HttpProtocol } from "@switchyard/protocol-http";
import { expectNoActiveConnections, startProxy, type StartedProxy } from "@switchyard/test-utils";
import { closeAfterTest, request, startBackend } from "./helpers.js";

// One HttpProtocol instance may serve several proxies: each has its own upstream pools, and a
// proxy that closes closes its own (core calls close(context) with the closing proxy's context).

async function proxyWith(protocol: HttpProtocol, backendPort: number): Promise<StartedProxy> {
  const p = await startProxy({
    listeners: [{ name: "web", protocol: "http", port: 0 }],
    routes: [{ targets: [`127.0.0.1:${backendPort}`] }],
    plugins: [protocol],
  });
  closeAfterTest({ close: () => p.proxy.close({ timeout: 2000 }) });
  return p;
}

describe("one HttpProtocol serving two proxies", () => {
  it("closing one proxy leaves the other's pool open: its idle upstream socket is reused, no 503", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    const protocol = new HttpProtocol();
    closeAfterTest({ close: async () => protocol.close() });
    const a = await proxyWith(protocol, backend.port);
    const b = await proxyWith(protocol, backend.port);

    expect((await request(a.port())).body).to.equal("ok");
    expect((await request(b.port())).body).to.equal("ok");
    // one pooled socket each
    expect(backend.connections).to.equal(2);
    expect(protocol.poolStats(b.proxy)).to.deep.equal([{ target: `127.0.0.1:${backend.port}`, open: 1, idle: 1, queued: 0 }]);

    await a.proxy.close({ timeout: 2000 });

    const again = await request(b.port());
    expect(again.status).to.equal(200);
    expect(again.body).to.equal("ok");
    // B's idle socket served it: A's close did not touch B's pool
    expect(backend.connections).to.equal(2);
    expect(protocol.poolStats(b.proxy)).to.deep.equal([{ target: `127.0.0.1:${backend.port}`, open: 1, idle: 1, queued: 0 }]);
    // A's pools are gone with it
    expect(protocol.poolStats(a.proxy)).to.deep.equal([]);
    await expectNoActiveConnections(b.proxy, 3000);
  });
});
