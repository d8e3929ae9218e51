import { expect } from "chai";
import type { ProxyRequest } from "@switchyard/core";
import { expectNoActiveConnections, type StartedProxy } from "@switchyard/test-utils";
import { SmtpProtocol, isSmtpTransaction, verdict, type SmtpHooks, type SmtpTransactionMessage } from "@switchyard/protocol-smtp";
import { RawClient, closeRawClients, codes, startBackend, startSmtpProxy, type Backend } from "./helpers.js";

describe("smtp hooks", () => {
  let a: Backend;
  let b: Backend;
  let p: StartedProxy;
  let hooks: SmtpHooks;
  beforeEach(async () => {
    a = await startBackend("backend-a.test");
    b = await startBackend("backend-b.test");
    p = await startSmtpProxy({
      routes: [
        { name: "a", listener: "mail", match: { ehlo: "*.a.example" }, targets: [`127.0.0.1:${a.port}`] },
        { name: "b", listener: "mail", match: { ehlo: "*.b.example" }, targets: [`127.0.0.1:${b.port}`] },
      ],
    });
    hooks = SmtpProtocol.getHooks(p.proxy);
  });
  afterEach(async () => {
    closeRawClients();
    await expectNoActiveConnections(p.proxy);
    await p.proxy.close({ timeout: 1000 });
    await a.close();
    await b.close();
  });

  async function client(): Promise<RawClient> {
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    return c;
  }

  it("getHooks gives one set per proxy", () => {
    expect(SmtpProtocol.getHooks(p.proxy)).to.equal(hooks);
  });

  it("onEhlo: reject answers with the tap's code; rewrite changes the routing key and the name sent on", async () => {
    hooks.onEhlo.tap("Ehlo", (ctx) => {
      if (ctx.domain === "bad.example") return verdict.reject(554, "5.7.1", "go away");
      if (ctx.domain === "alias.example") return verdict.rewrite("real.b.example");
      return undefined;
    });
    const c = await client();
    const r = await c.command("EHLO bad.example");
    expect(r).to.deep.equal({ code: 554, lines: ["5.7.1 go away"] });
    expect((await c.command("EHLO alias.example")).code).to.equal(250);
    await c.command("MAIL FROM:<s@sender.example>");
    await c.command("RCPT TO:<r@dest.example>");
    await c.command("DATA");
    await c.command("Subject: x\r\n\r\nx\r\n.");
    await c.command("QUIT");
    await c.waitClosed();
    expect(b.received.map((m) => m.helo)).to.deep.equal(["real.b.example"]);
  });

  it("onMailFrom and onRcptTo: defer, reject, rewrite — the backend sees only what passed", async () => {
    hooks.onMailFrom.tapPromise("Mail", async (ctx) => {
      if (ctx.address === "later@sender.example") return verdict.defer();
      if (ctx.address === "old@sender.example") return verdict.rewrite("new@sender.example");
      return undefined;
    });
    hooks.onRcptTo.tap("Rcpt", (ctx) => (ctx.address.startsWith("blocked@") ? verdict.reject(550, "5.1.1", "no such user") : ctx.address === "alias@dest.example" ? verdict.rewrite("real@dest.example") : verdict.accept()));
    const c = await client();
    await c.command("EHLO mx.a.example");
    const deferred = await c.command("MAIL FROM:<later@sender.example>");
    expect(deferred.code).to.equal(451);
    expect(deferred.lines[0]).to.match(/^4\.7\.1 /);
    expect((await c.command("MAIL FROM:<old@sender.example>")).code).to.equal(250);
    expect(await c.command("RCPT TO:<blocked@dest.example>")).to.deep.equal({ code: 550, lines: ["5.1.1 no such user"] });
    expect((await c.command("RCPT TO:<alias@dest.example>")).code).to.equal(250);
    await c.command("DATA");
    await c.command("Subject: x\r\n\r\nx\r\n.");
    await c.command("QUIT");
    await c.waitClosed();
    expect(a.received.map((m) => [m.from, m.to])).to.deep.equal([["new@sender.example", ["real@dest.example"]]]);
  });

  it("onData: sees the headers before the backend does; reject refuses the message, rewrite replaces the headers", async () => {
    const seen: string[] = [];
    hooks.onData.tap("Data", (ctx) => {
      seen.push(ctx.headers);
      if (ctx.headers.includes("Subject: spam")) return verdict.reject(550, "5.7.1", "spam");
      return verdict.rewrite("X-Checked: yes\r\n" + ctx.headers);
    });
    const c = await client();
    await c.command("EHLO mx.a.example");
    for (const subject of ["spam", "ham"]) {
      await c.command("MAIL FROM:<s@sender.example>");
      await c.command("RCPT TO:<r@dest.example>");
      expect((await c.command("DATA")).code).to.equal(354);
      await c.command(`Subject: ${subject}\r\nFrom: s@sender.example\r\n\r\n${"body\r\n".repeat(3000)}.`);
    }
    await c.command("QUIT");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 250, 250, 354, 550, 250, 250, 354, 250, 221]);
    expect(seen).to.deep.equal(["Subject: spam\r\nFrom: s@sender.example\r\n", "Subject: ham\r\nFrom: s@sender.example\r\n"]);
    expect(a.received).to.have.length(1);
    expect(a.received[0]!.data.toString()).to.equal("X-Checked: yes\r\nSubject: ham\r\nFrom: s@sender.example\r\n\r\n" + "body\r\n".repeat(3000));
  });

  it("disconnect answers 421 and closes; a throwing tap ends the session with 421 and a pluginError", async () => {
    hooks.onRcptTo.tap("Kick", (ctx) => (ctx.address.startsWith("kick@") ? verdict.disconnect() : undefined));
    hooks.onMailFrom.tap("Broken", (ctx) => {
      if (ctx.address.startsWith("boom@")) throw new Error("tap bug");
      return undefined;
    });
    const errors: unknown[] = [];
    p.proxy.events.on("pluginError", (e) => errors.push(e));
    const c = await client();
    await c.command("EHLO mx.a.example");
    await c.command("MAIL FROM:<s@sender.example>");
    c.send("RCPT TO:<kick@dest.example>\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 250, 421]);
    const d = await client();
    await d.command("EHLO mx.a.example");
    d.send("MAIL FROM:<boom@sender.example>\r\n");
    await d.waitClosed();
    expect(codes(d.replies)).to.deep.equal([220, 250, 421]);
    expect(errors).to.have.length(1);
    expect((errors[0] as { plugin: string; hook: string }).plugin).to.equal("Broken");
    expect((errors[0] as { plugin: string; hook: string }).hook).to.equal("onMailFrom");
  });

  it("core's onRequest sees one smtp transaction per message, and its direct response refuses it", async () => {
    const seen: SmtpTransactionMessage[] = [];
    p.proxy.hooks.onRequest.tap("Limits", (req: ProxyRequest) => {
      if (!isSmtpTransaction(req)) return req;
      seen.push(req);
      if (req.recipients.includes("limited@dest.example")) req.response = { status: 452, body: "4.5.3 too many messages" };
      return req;
    });
    const c = await client();
    await c.command("EHLO mx.a.example");
    for (const rcpt of ["r@dest.example", "limited@dest.example"]) {
      await c.command("MAIL FROM:<s@sender.example>");
      await c.command(`RCPT TO:<${rcpt}>`);
      const r = await c.command("DATA");
      if (r.code === 354) await c.command("Subject: x\r\n\r\nx\r\n.");
    }
    await c.command("QUIT");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 250, 250, 354, 250, 250, 250, 452, 221]);
    expect(seen.map((m) => [m.protocol, m.mailFrom, m.recipients, m.helo, m.route?.name])).to.deep.equal([
      ["smtp", "s@sender.example", ["r@dest.example"], "mx.a.example", "a"],
      ["smtp", "s@sender.example", ["limited@dest.example"], "mx.a.example", "a"],
    ]);
    expect(a.received).to.have.length(1);
  });
});
