import { once } from "node:events";
import http from "node:http";
import { connect, type AddressInfo } from "node:net";
import { expect } from "chai";
import type { Connection, ConnectionState } from "@switchyard/core";
import { HttpProtocol } from "@switchyard/protocol-http";
import { expectNoActiveConnections, startProxy, waitFor } from "@switchyard/test-utils";

// The connection state of an HTTP connection (core's transition table): established once it
// serves requests, whatever its later requests do. Each request is routed on its own; that is no
// phase of the connection, and an idle keep-alive connection is not "routing".
describe("HTTP connection states", () => {
  it("stays established across keep-alive requests routed to different routes, then closes", async () => {
    const backend = http.createServer({ keepAliveTimeout: 5000 }, (req, res) => res.end(`hello ${req.url}`));
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
    const port = (backend.address() as AddressInfo).port;
    const protocol = new HttpProtocol();
    const p = await startProxy({
      listeners: [{ name: "web", protocol: "http", port: 0 }],
      routes: [
        { name: "a", match: { path: "/a" }, targets: [`127.0.0.1:${port}`] },
        { name: "b", match: { path: "/b" }, targets: [`127.0.0.1:${port}`] },
      ],
      plugins: [protocol],
    });
    try {
      const transitions: ConnectionState[] = [];
      const atResolve: ConnectionState[] = [];
      let conn: Connection | undefined;
      p.proxy.hooks.onAccept.tap("states", (c) => {
        conn = c;
        const original = c.setState.bind(c);
        c.setState = (s: ConnectionState) => {
          original(s);
          if (transitions.at(-1) !== c.state) transitions.push(c.state);
        };
        transitions.push(c.state);
        return undefined;
      });
      // a plugin's onResolve tap makes routing asynchronous (proxy.resolve, not tryResolveSync)
      p.proxy.hooks.onResolve.tapPromise({ name: "states", stage: -1000 }, async ({ connection }) => {
        atResolve.push(connection.state);
        return undefined;
      });
      p.proxy.hooks.onClose.tap("states", (c) => void transitions.push(c.state));

      const s = connect(p.port(), "127.0.0.1");
      s.on("error", () => {});
      await once(s, "connect");
      let got = "";
      s.on("data", (d: Buffer) => (got += d.toString()));
      s.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(() => got.includes("hello /a"), 3000, "the first response");
      // idle between requests on a keep-alive connection
      expect(conn!.state).to.equal("established");
      s.write("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(() => got.includes("hello /b"), 3000, "the second response");
      expect(conn!.state).to.equal("established");
      expect(atResolve).to.deep.equal(["established", "established"]);
      s.end();
      await waitFor(() => conn!.state === "closed", 3000, "the connection to close");
      transitions.push(conn!.state);
      expect(transitions).to.deep.equal(["accepting", "handshaking", "established", "closing", "closed"]);
      await expectNoActiveConnections(p.proxy);
    } finally {
      await p.proxy.close({ timeout: 500 });
      protocol.close();
      await new Promise<void>((r) => backend.close(() => r()));
    }
  });
});
