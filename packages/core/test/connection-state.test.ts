import { Socket } from "node:net";
import { expect } from "chai";
import {
  canTransition,
  Connection,
  CONNECTION_TRANSITIONS,
  ConnectionTimer,
  IllegalTransitionError,
  Proxy,
  relay,
  type ProtocolHandler,
  type ProxyPlugin,
  silentLogger,
  type ConnectionState,
} from "@switchyard/core";
import { readBytes, startEchoServer, useTcpFixture, waitFor } from "@switchyard/test-utils";

const STATES: ConnectionState[] = ["accepting", "handshaking", "routing", "connecting", "established", "closing", "closed"];

/** A connection of a proxy that is not listening, on a socket that never connects. */
function looseConnection(): Connection {
  const proxy = new Proxy({ listeners: [{ name: "l", protocol: "tcp", port: 0 }], logger: silentLogger });
  return new Connection(proxy, proxy.listeners[0]!, new Socket());
}

/** Drives a fresh connection along `path`; the error of the first refused step, if any. */
function walk(path: ConnectionState[]): unknown {
  const conn = looseConnection();
  try {
    for (const s of path) conn.setState(s);
    return undefined;
  } catch (err) {
    return err;
  } finally {
    conn.destroy("done");
  }
}

describe("connection state machine", () => {
  it("is a table: only the listed transitions forward, every live state may close", () => {
    expect(CONNECTION_TRANSITIONS.accepting).to.deep.equal(["handshaking", "closing"]);
    expect(CONNECTION_TRANSITIONS.established).to.deep.equal(["closing"]);
    expect(CONNECTION_TRANSITIONS.closed).to.deep.equal([]);
    for (const s of STATES) if (s !== "closed") expect(canTransition(s, s === "closing" ? "closed" : "closing"), s).to.equal(true);
    for (const [from, to] of [
      ["established", "routing"],
      ["established", "connecting"],
      ["connecting", "routing"],
      ["accepting", "established"],
      ["accepting", "routing"],
      ["closed", "accepting"],
      ["closing", "established"],
    ] as Array<[ConnectionState, ConnectionState]>) {
      expect(canTransition(from, to), `${from} → ${to}`).to.equal(false);
    }
  });

  it("follows the table and throws IllegalTransitionError on anything else", () => {
    expect(walk(["handshaking", "routing", "connecting", "established"])).to.equal(undefined);
    expect(walk(["handshaking", "established"])).to.equal(undefined);
    expect(walk(["handshaking", "routing", "established"])).to.equal(undefined);
    const err = walk(["handshaking", "routing", "connecting", "established", "routing"]);
    expect(err).to.be.instanceOf(IllegalTransitionError);
    expect((err as IllegalTransitionError).from).to.equal("established");
    expect((err as IllegalTransitionError).to).to.equal("routing");
    expect((err as Error).message).to.match(/illegal state transition established → routing/);
    expect(walk(["established"])).to.be.instanceOf(IllegalTransitionError);
    expect(walk(["handshaking", "connecting"])).to.be.instanceOf(IllegalTransitionError);
    // only destroy() closes a connection
    expect(walk(["handshaking", "closing"])).to.be.instanceOf(IllegalTransitionError);
    expect(walk(["closed"])).to.be.instanceOf(IllegalTransitionError);
    // the same state again is no transition
    expect(walk(["handshaking", "handshaking", "routing"])).to.equal(undefined);
  });

  it("is closing while destroy releases it, closed after, and ignores late phase reports", () => {
    const conn = looseConnection();
    conn.setState("handshaking");
    const seen: Array<[ConnectionState, boolean]> = [];
    conn.onDestroy((_reason, c) => seen.push([c.state, c.destroyed]));
    conn.destroy("done");
    expect(seen).to.deep.equal([["closing", true]]);
    expect(conn.state).to.equal("closed");
    // async work that finishes after the client left may still report its phase: no change, no throw
    conn.setState("connecting");
    conn.setState("established");
    expect(conn.state).to.equal("closed");
  });

  it("owns one timer per named phase: re-arming replaces it, destroy clears them all", async () => {
    const conn = looseConnection();
    const fired: string[] = [];
    conn.timer(ConnectionTimer.HANDSHAKE, 20, () => fired.push("first"));
    conn.timer(ConnectionTimer.HANDSHAKE, 30, () => fired.push("second"));
    conn.timer(ConnectionTimer.LINGER, 25, () => fired.push("linger"));
    conn.timer(ConnectionTimer.LIFETIME, 25, () => fired.push("lifetime"));
    conn.clearTimer(ConnectionTimer.LIFETIME);
    await waitFor(() => fired.length === 2, 1000, "timers to fire");
    expect(fired).to.deep.equal(["linger", "second"]);
    conn.timer(ConnectionTimer.TLS_HANDSHAKE, 20, () => fired.push("tls"));
    conn.destroy("done");
    await new Promise((r) => setTimeout(r, 50));
    expect(fired).to.deep.equal(["linger", "second"]);
  });
});

describe("connection states of a real TCP connection", () => {
  const fx = useTcpFixture();

  it("goes accepting → handshaking → routing → connecting → established → closing → closed", async () => {
    const echo = await fx.serve(startEchoServer());
    const p = await fx.proxyTo([`127.0.0.1:${echo.port}`]);
    const states: ConnectionState[] = [];
    let conn: Connection | undefined;
    p.proxy.hooks.onAccept.tap("states", (c) => {
      conn = c;
      states.push(c.state);
      return undefined;
    });
    p.proxy.hooks.onResolve.tap({ name: "states", stage: -1000 }, ({ connection }) => {
      states.push(connection.state);
      return undefined;
    });
    p.proxy.hooks.onClose.tap("states", (c) => void states.push(c.state));
    const c = await fx.client(p.port());
    c.write("ping");
    expect((await readBytes(c, 4)).toString()).to.equal("ping");
    states.push(conn!.state);
    c.end();
    await waitFor(() => conn!.state === "closed", 2000, "the connection to close");
    states.push(conn!.state);
    expect(states).to.deep.equal(["accepting", "routing", "established", "closing", "closed"]);
  });

  it("reports each transition in order (recorded through setState)", async () => {
    const echo = await fx.serve(startEchoServer());
    const p = await fx.proxyTo([`127.0.0.1:${echo.port}`]);
    const seen: ConnectionState[] = [];
    p.proxy.hooks.onAccept.tapPromise("hold", async (c) => {
      const original = c.setState.bind(c);
      c.setState = (s: ConnectionState) => {
        original(s);
        seen.push(c.state);
      };
      return undefined;
    });
    const c = await fx.client(p.port());
    c.write("x");
    expect((await readBytes(c, 1)).toString()).to.equal("x");
    c.end();
    await waitFor(() => p.proxy.connections.size === 0, 2000, "the connection to close");
    expect(seen).to.deep.equal(["handshaking", "routing", "connecting", "established"]);
  });

  it("an established L7 session that routes and connects for a message stays established", async () => {
    const echo = await fx.serve(startEchoServer());
    const states: ConnectionState[] = [];
    // a session-style protocol: established first, then routes and connects for its first message
    const session: ProtocolHandler & ProxyPlugin = {
      name: "session",
      apply: (proxy) => proxy.registerProtocol(session),
      async handle(conn) {
        conn.setState("established");
        states.push(conn.state);
        const key = { listener: conn.listener.name, protocol: "session", clientIp: conn.clientIp };
        const match = await conn.context.resolve(conn, key);
        states.push(conn.state);
        const { socket } = await conn.context.connectUpstream(conn, match);
        states.push(conn.state);
        relay(conn, socket, { idleMs: 0 });
      },
    };
    const p = await fx.start({
      listeners: [{ name: "s", protocol: "session", port: 0 }],
      routes: [{ name: "r", targets: [`127.0.0.1:${echo.port}`] }],
      plugins: [session],
    });
    const c = await fx.client(p.port());
    c.write("hi");
    expect((await readBytes(c, 2)).toString()).to.equal("hi");
    expect(states).to.deep.equal(["established", "established", "established"]);
  });
});
