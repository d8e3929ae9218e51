import { expect } from "chai";
import type { ProxyPlugin } from "@switchyard/core";
import { closedPort, expectNoActiveConnections, sleep, type StartedProxy } from "@switchyard/test-utils";
import { RawClient, closeRawClients, codes, startBackend, startSmtpProxy, transport, type Backend } from "./helpers.js";
import { startRawBackend, type RawBackend } from "./raw-backend.js";

describe("smtp errors and limits", () => {
  let a: Backend;
  let p: StartedProxy | undefined;
  beforeEach(async () => {
    a = await startBackend("backend-a.test");
  });
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await a.close();
  });

  const toA = () => [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`] }];

  async function greeted(port: number): Promise<RawClient> {
    const c = await RawClient.open(port);
    await c.waitReplies(1);
    return c;
  }

  it("answers 421 4.4.1 and closes when the backend is down", async () => {
    p = await startSmtpProxy({ routes: [{ name: "down", listener: "mail", targets: [`127.0.0.1:${await closedPort()}`] }] });
    const c = await greeted(p.port());
    c.send("EHLO client.example\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 421]);
    expect(c.replies[1]!.lines[0]).to.match(/^4\.4\.1 /);
    expect(p.proxy.stats().closeReasons["connect-failed"]).to.equal(1);
  });

  it("counts a backend's 421 greeting as a connect failure: 421 to the client", async () => {
    const raw = await startRawBackend({ greeting: "421 4.3.2 busy" });
    p = await startSmtpProxy({ routes: [{ name: "busy", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
    const c = await greeted(p.port());
    c.send("EHLO client.example\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 421]);
    await raw.close();
  });

  it("offers a backend's 421 greeting to onUpstreamResponse: a tap's retry goes to the next target", async () => {
    const busy = await startRawBackend({ greeting: "421 4.3.2 busy" });
    const seen: Array<{ code: string | undefined; attempt: number; requestSent: boolean }> = [];
    const retry: ProxyPlugin = {
      name: "RetryOnce",
      apply(proxy) {
        proxy.hooks.onUpstreamResponse.tap("RetryOnce", (res) => {
          seen.push({ code: res.error?.code, attempt: res.attempt, requestSent: res.requestSent });
          if (res.error !== undefined && res.attempt === 1) res.retry = { delayMs: 0, reason: "busy backend" };
          return res;
        });
      },
    };
    p = await startSmtpProxy({ routes: [{ name: "two", listener: "mail", targets: [`127.0.0.1:${busy.port}`, `127.0.0.1:${a.port}`] }], plugins: [retry] });
    const t = transport(p.port());
    await t.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "s", text: "t" });
    t.close();
    expect(seen).to.deep.equal([{ code: "PRX_ERR_UPSTREAM_CONNECT", attempt: 1, requestSent: false }]);
    expect(a.received).to.have.length(1);
    expect(busy.sessions).to.have.length(1);
    await busy.close();
  });

  it("answers malformed and over-long lines with 500/501 and keeps the session", async () => {
    p = await startSmtpProxy({ routes: toA() });
    const c = await greeted(p.port());
    c.send("EHLO client.example\r\n");
    c.send("X".repeat(600) + "\r\n");
    c.send("NOOP\n");
    c.send("NO\rOP\r\n");
    c.send("MAIL FROM:bad\r\n");
    c.send("MAIL FROM:<s@sender.example> " + "P".repeat(5000) + "\r\n");
    c.send("MAIL FROM:<s@sender.example>\r\nRCPT TO:<r@dest.example>\r\nDATA\r\nSubject: x\r\n\r\n" + "L".repeat(990) + "\r\n.\r\nQUIT\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 500, 500, 500, 501, 500, 250, 250, 354, 250, 221]);
    expect(a.received).to.have.length(1);
  });

  it("closes with 421 after too many errors", async () => {
    p = await startSmtpProxy({ routes: toA(), options: { maxErrors: 3 } });
    const c = await greeted(p.port());
    c.send("A\r\nB\r\nC\r\nD\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 502, 502, 502, 421]);
  });

  it("closes a slow client with 421 4.4.2 once the command timeout passes, the handshake deadline having ended at the greeting", async () => {
    p = await startSmtpProxy({ routes: toA(), options: { commandTimeout: 300 }, listener: { timeouts: { handshake: 100 } } });
    const c = await greeted(p.port());
    // past the handshake deadline: still open
    await sleep(180);
    expect(c.closed).to.equal(false);
    expect((await c.command("EHLO client.example")).code).to.equal(250);
    const started = Date.now();
    await c.waitClosed(3000);
    expect(Date.now() - started).to.be.at.least(250);
    expect(c.replies.at(-1)!.code).to.equal(421);
    expect(c.replies.at(-1)!.lines[0]).to.match(/^4\.4\.2 /);
    expect(p.proxy.stats().closeReasons["idle-timeout"]).to.equal(1);
  });

  it("times out a client that stops in the middle of DATA", async () => {
    p = await startSmtpProxy({ routes: toA(), options: { dataTimeout: 200 } });
    const c = await greeted(p.port());
    c.send("EHLO client.example\r\nMAIL FROM:<s@sender.example>\r\nRCPT TO:<r@dest.example>\r\nDATA\r\nSubject: x\r\n");
    await c.waitClosed(3000);
    expect(codes(c.replies)).to.deep.equal([220, 250, 250, 250, 354, 421]);
    expect(a.received).to.have.length(0);
  });

  it("refuses a message over maxMessageSize: 552 at MAIL for a declared SIZE, 552 after DATA otherwise, nothing delivered", async () => {
    p = await startSmtpProxy({ routes: toA(), options: { maxMessageSize: 1000 } });
    const c = await greeted(p.port());
    const ehlo = await c.command("EHLO client.example");
    expect(ehlo.lines).to.include("SIZE 1000");
    expect((await c.command("MAIL FROM:<s@sender.example> SIZE=5000")).code).to.equal(552);
    await c.command("MAIL FROM:<s@sender.example>");
    await c.command("RCPT TO:<r@dest.example>");
    await c.command("DATA");
    const r = await c.command("Subject: x\r\n\r\n" + "y".repeat(2000) + "\r\n.");
    expect(r.code).to.equal(552);
    expect(r.lines[0]).to.match(/^5\.3\.4 /);
    // the session goes on, on a new backend session
    await c.command("MAIL FROM:<s@sender.example>");
    await c.command("RCPT TO:<r@dest.example>");
    await c.command("DATA");
    expect((await c.command("Subject: small\r\n\r\nok\r\n.")).code).to.equal(250);
    await c.command("QUIT");
    await c.waitClosed();
    expect(a.received.map((m) => m.data.toString())).to.deep.equal(["Subject: small\r\n\r\nok\r\n"]);
  });

  it("closes with 421 4.3.2 on shutdown, after the transaction in progress", async () => {
    p = await startSmtpProxy({ routes: toA() });
    const idle = await greeted(p.port());
    await idle.command("EHLO client.example");
    const busy = await greeted(p.port());
    await busy.command("EHLO client.example");
    await busy.command("MAIL FROM:<s@sender.example>");
    const closing = p.proxy.close({ timeout: 3000 });
    await idle.waitClosed();
    expect(idle.replies.at(-1)!.code).to.equal(421);
    expect(idle.replies.at(-1)!.lines[0]).to.match(/^4\.3\.2 /);
    expect((await busy.command("RCPT TO:<r@dest.example>")).code).to.equal(250);
    await busy.command("DATA");
    expect((await busy.command("Subject: last\r\n\r\nx\r\n.")).code).to.equal(250);
    await busy.waitClosed();
    expect(busy.replies.at(-1)!.code).to.equal(421);
    await closing;
    expect(a.received).to.have.length(1);
    await expectNoActiveConnections(p.proxy);
    p = undefined;
  });
});

describe("smtp smuggling (CVE-2023-51764 class)", () => {
  let raw: RawBackend;
  let p: StartedProxy | undefined;
  beforeEach(async () => {
    raw = await startRawBackend({ lenientEnd: true });
  });
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await raw.close();
  });

  const VARIANTS: Array<[string, string]> = [
    ["<LF>.<LF>", "\n.\n"],
    ["<LF>.<CRLF>", "\n.\r\n"],
    ["<CRLF>.<LF>", "\r\n.\n"],
    ["<CR>.<CR>", "\r.\r"],
    ["<CR>.<CRLF>", "\r.\r\n"],
    ["<CRLF>.<CR>", "\r\n.\r"],
    ["bare LF", "\n"],
    ["bare CR", "\r"],
  ];

  for (const [name, seq] of VARIANTS) {
    it(`refuses ${name}: 554 5.6.0, the smuggled commands never reach the backend, nothing delivered`, async () => {
      p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
      const c = await RawClient.open(p.port());
      await c.waitReplies(1);
      await c.command("EHLO client.example");
      await c.command("MAIL FROM:<s@sender.example>");
      await c.command("RCPT TO:<r@dest.example>");
      await c.command("DATA");
      const smuggled = `Subject: x\r\n\r\nhello${seq}MAIL FROM:<evil@sender.example>\r\nRCPT TO:<victim@dest.example>\r\nDATA\r\nevil\r\n`;
      const r = await c.command(smuggled + ".");
      expect(r.code).to.equal(554);
      expect(r.lines[0]).to.match(/^5\.6\.0 /);
      // the session goes on (the proxy opened a new backend session for it)
      await c.command("MAIL FROM:<s@sender.example>");
      await c.command("RCPT TO:<r@dest.example>");
      await c.command("DATA");
      expect((await c.command("Subject: fine\r\n\r\nok\r\n.")).code).to.equal(250);
      await c.command("QUIT");
      await c.waitClosed();
      const all = raw.sessions.flat();
      expect(all.some((l) => l.includes("evil") || l.includes("victim"))).to.equal(false);
      expect(raw.messages.map((m) => m.toString())).to.deep.equal(["Subject: fine\r\n\r\nok\r\n"]);
    });
  }

  it("normalises instead with bareNewline: normalize (a made '.' line stuffed, no end of data smuggled)", async () => {
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }], options: { bareNewline: "normalize" } });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    await c.command("EHLO client.example");
    await c.command("MAIL FROM:<s@sender.example>");
    await c.command("RCPT TO:<r@dest.example>");
    await c.command("DATA");
    expect((await c.command("Subject: x\r\n\r\na\n.\nRSET\r\n.")).code).to.equal(250);
    await c.command("QUIT");
    await c.waitClosed();
    expect(raw.messages.map((m) => m.toString())).to.deep.equal(["Subject: x\r\n\r\na\r\n..\r\nRSET\r\n"]);
    expect(raw.sessions[0]!.filter((l) => l === "RSET")).to.deep.equal([]);
  });

  it("nodemailer's own messages pass (its line ends are CRLF)", async () => {
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
    const t = transport(p.port());
    await t.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "s", text: "line1\nline2\n.\n" });
    t.close();
    expect(raw.messages).to.have.length(1);
  });
});
