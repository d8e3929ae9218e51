import { expect } from "chai";
import { ConfigError } from "@switchyard/core";
import { expectNoActiveConnections, sleep, waitFor, type StartedProxy } from "@switchyard/test-utils";
import { SmtpProtocol } from "@switchyard/protocol-smtp";
import { RawClient, closeRawClients, codes, startSmtpProxy } from "./helpers.js";
import { startRawBackend, type RawBackend } from "./raw-backend.js";

describe("smtp lifecycle", () => {
  let raw: RawBackend;
  let p: StartedProxy | undefined;
  beforeEach(async () => {
    raw = await startRawBackend();
  });
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await raw.close();
  });
  const routes = () => [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }];

  async function client(): Promise<RawClient> {
    const c = await RawClient.open(p!.port());
    await c.waitReplies(1);
    return c;
  }

  it("answers core's refusals with 421: an onAccept rejection, the listener's connection limit", async () => {
    p = await startSmtpProxy({ routes: routes() });
    p.proxy.hooks.onAccept.tap("Deny", () => ({ reason: "denied" }));
    const c = await RawClient.open(p.port());
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([421]);
    expect(c.replies[0]!.lines[0]).to.match(/^4\.7\.0 proxy\.test Service not available/);
    await expectNoActiveConnections(p.proxy);
    await p.proxy.close({ timeout: 1000 });

    p = await startSmtpProxy({ routes: routes(), listener: { maxConnections: 1 } });
    const first = await client();
    const second = await RawClient.open(p.port());
    await second.waitClosed();
    expect(codes(second.replies)).to.deep.equal([421]);
    expect(second.replies[0]!.lines[0]).to.match(/too many connections/);
    expect(first.closed).to.equal(false);
  });

  it("ends the handshake deadline at the greeting: a client quiet past it is not refused", async () => {
    // command timeouts take over after the greeting (tested in errors.test.ts)
    p = await startSmtpProxy({ routes: routes(), listener: { timeouts: { handshake: 100 } } });
    const c = await client();
    await sleep(250);
    expect(c.closed).to.equal(false);
    expect((await c.command("EHLO client.example")).code).to.equal(250);
  });

  it("reconnects when the backend went away between transactions; 421 when it goes away during one", async () => {
    p = await startSmtpProxy({ routes: routes() });
    const c = await client();
    await c.command("EHLO client.example");
    raw.kick();
    await sleep(50);
    expect(c.closed).to.equal(false);
    expect((await c.command("MAIL FROM:<s@sender.example>")).code).to.equal(250);
    expect(raw.sessions).to.have.length(2);
    expect(raw.sessions[1]!.slice(0, 2)).to.deep.equal(["EHLO client.example", "MAIL FROM:<s@sender.example>"]);
    raw.kick();
    await c.waitClosed();
    expect(c.replies.at(-1)!.code).to.equal(421);
    expect(c.replies.at(-1)!.lines[0]).to.match(/^4\.4\.2 /);
  });

  it("a backend that dies during a transaction: 421 4.4.2 to the client", async () => {
    p = await startSmtpProxy({ routes: routes() });
    const c = await client();
    await c.command("EHLO client.example");
    await c.command("MAIL FROM:<s@sender.example>");
    raw.kick();
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 250, 421]);
    expect(c.replies[3]!.lines[0]).to.match(/^4\.4\.2 /);
  });

  it("a backend that answers with garbage while a reply is awaited: 421 4.4.2 to the client", async () => {
    const bad = await startRawBackend({ garbageOn: "RCPT" });
    p = await startSmtpProxy({ routes: [{ name: "bad", listener: "mail", targets: [`127.0.0.1:${bad.port}`] }] });
    const c = await client();
    await c.command("EHLO client.example");
    await c.command("MAIL FROM:<s@sender.example>");
    c.send("RCPT TO:<r@dest.example>\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 250, 421]);
    expect(c.replies[3]!.lines[0]).to.match(/^4\.4\.2 /);
    await bad.close();
  });

  it("a client that disconnects in the middle of DATA leaves nothing delivered and nothing open", async () => {
    p = await startSmtpProxy({ routes: routes() });
    const c = await client();
    c.send("EHLO client.example\r\nMAIL FROM:<s@sender.example>\r\nRCPT TO:<r@dest.example>\r\nDATA\r\nSubject: x\r\n\r\npartial");
    await c.waitReplies(5);
    c.close();
    await expectNoActiveConnections(p.proxy);
    await waitFor(() => raw.sessions.length === 1);
    expect(raw.messages).to.have.length(0);
  });

  it("a client that closes before the greeting is read, or right after EHLO, leaves nothing open", async () => {
    p = await startSmtpProxy({ routes: routes() });
    for (let i = 0; i < 5; i++) {
      const c = await RawClient.open(p.port());
      if (i % 2 === 1) c.send("EHLO client.example\r\n");
      c.close();
    }
    await expectNoActiveConnections(p.proxy);
  });

  it("a client that pipelines without reading its replies is throttled: the proxy's buffers stay bounded", async () => {
    p = await startSmtpProxy({ routes: routes() });
    const c = await client();
    c.socket.pause();
    const batch = "NOOP\r\n".repeat(10_000);
    let sent = 0;
    for (let i = 0; i < 100; i++) {
      if (!c.socket.write(batch)) await new Promise((r) => setTimeout(r, 5));
      sent += batch.length;
    }
    await sleep(300);
    const [conn] = [...p.proxy.connections];
    expect(conn).to.not.equal(undefined);
    // 6 MB of commands offered, 7 MB of replies owed: the proxy holds at most a window of them
    expect(conn!.socket.writableLength).to.be.below(256 * 1024);
    expect(sent).to.equal(6_000_000);
    c.close();
  });

  it("rejects bad listener options when the proxy is built", async () => {
    let err: unknown;
    try {
      await startSmtpProxy({ routes: routes(), options: { routeBy: "subject" } });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ConfigError);
    expect((err as Error).message).to.include("routeBy must be one of");
    expect(() => new SmtpProtocol({ commandTimout: 5 } as never)).to.throw(ConfigError, /did you mean "commandTimeout"/);
  });
});
