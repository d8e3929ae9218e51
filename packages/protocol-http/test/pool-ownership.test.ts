import { expect } from "chai";
import { Stage, type ProxyPlugin, type Resolver } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { expectNoActiveConnections, startProxy, waitFor, type StartedProxy } from "@switchyard/test-utils";
import { closeAfterTest, rawSocket, request, startBackend, type Backend } from "./helpers.js";

// A pooled upstream socket belongs to its pool. A client connection only leases it for one
// exchange: the client leaving must never destroy a socket that another client is using now,
// and a socket dialled without the SSRF guard must never serve a route the guard protects.

async function proxyWith(o: { resolver: Resolver; ssrf?: { disabled: true }; plugins?: ProxyPlugin[]; routes?: Array<{ name: string; targets: string[] }> }): Promise<StartedProxy> {
  const protocol = new HttpProtocol();
  const started = await startProxy({
    listeners: [{ name: "web", protocol: "http", port: 0 }],
    plugins: [protocol, ...(o.plugins ?? [])],
    resolver: o.resolver,
    ...(o.routes ? { routes: o.routes } : {}),
    ...(o.ssrf ? { ssrf: o.ssrf } : {}),
  });
  closeAfterTest({
    close: async () => {
      // before close(), which would destroy whatever a test left open
      await expectNoActiveConnections(started.proxy);
      await started.proxy.close({ timeout: 1000 });
      await expectNoActiveConnections(started.proxy);
      protocol.close();
    },
  });
  return started;
}

/** A backend that answers `/slow…` after 300 ms, anything else at once; counts requests by path. */
async function slowBackend(): Promise<{ backend: Backend; seen: Map<string, number> }> {
  const seen = new Map<string, number>();
  const backend = await startBackend((req, res) => {
    seen.set(req.url!, (seen.get(req.url!) ?? 0) + 1);
    req.resume();
    req.on("end", () => setTimeout(() => res.end(`done ${req.url}`), req.url!.startsWith("/slow") ? 300 : 0));
  });
  return { backend, seen };
}

describe("pooled upstream socket ownership", () => {
  for (const method of ["POST", "GET"] as const) {
    it(`a resolver route's client leaving does not touch the pooled socket another client's ${method} is using`, async () => {
      const { backend, seen } = await slowBackend();
      const started = await proxyWith({ resolver: { resolve: async () => `127.0.0.1:${backend.port}` }, ssrf: { disabled: true } });
      // client A is answered on a new upstream socket, which goes back to the pool idle
      const a = await rawSocket(started.port());
      a.socket.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
      await a.waitFor("done /a");
      // client B's slow request takes that idle socket
      const path = `/slow-${method.toLowerCase()}`;
      const b = request(started.port(), { method, path, ...(method === "POST" ? { body: "payload" } : {}) });
      await waitFor(() => seen.get(path) === 1);
      expect(backend.connections).to.equal(1);
      // A leaves while B's response is pending on the socket A's connection once dialled
      a.socket.destroy();
      await a.closed;
      const res = await b;
      expect(res.status).to.equal(200);
      expect(res.body).to.equal(`done ${path}`);
      // the backend ran B's request once: nothing was sent again on a new socket
      expect(seen.get(path)).to.equal(1);
      expect(backend.connections).to.equal(1);
    });
  }

  it("a resolver (guarded) route never reuses an idle socket dialled for a static (unguarded) route to the same address", async () => {
    const { backend } = await slowBackend();
    const target = `127.0.0.1:${backend.port}`;
    // "static.test" goes to the route table's route (no SSRF guard: the operator wrote it);
    // every other host asks the resolver, whose loopback answer the guard must refuse
    const staticFirst: ProxyPlugin = {
      name: "StaticFirst",
      apply(proxy) {
        proxy.hooks.onResolve.tap({ name: "StaticFirst", stage: Stage.ROUTE - 1 }, ({ key }) =>
          key.host === "static.test" ? proxy.routes.match(key) : undefined,
        );
      },
    };
    const started = await proxyWith({
      resolver: { resolve: async () => target },
      routes: [{ name: "static", targets: [target] }],
      plugins: [staticFirst],
    });
    const first = await request(started.port(), { headers: { host: "static.test" } });
    expect(first.status).to.equal(200);
    expect(backend.connections).to.equal(1);
    // an idle socket to the same host:port is in the pool now
    const guarded = await request(started.port(), { headers: { host: "tenant.test" } });
    expect(guarded.status).to.equal(502); // PRX_ERR_SSRF_BLOCKED
    expect(backend.requests.length).to.equal(1);
    // the static route still reuses its own socket
    expect((await request(started.port(), { headers: { host: "static.test" } })).status).to.equal(200);
    expect(backend.connections).to.equal(1);
  });
});
