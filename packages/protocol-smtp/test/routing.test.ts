import { expect } from "chai";
import { createTestCa, expectNoActiveConnections, type StartedProxy } from "@switchyard/test-utils";
import { RawClient, closeRawClients, codes, startBackend, startSmtpProxy, transport, type Backend } from "./helpers.js";

describe("smtp routing", () => {
  let a: Backend;
  let b: Backend;
  let p: StartedProxy | undefined;
  const ca = createTestCa();
  const cert = ca.issue({ commonName: "proxy.test" });
  const methods: string[] = [];

  beforeEach(async () => {
    methods.length = 0;
    a = await startBackend("backend-a.test");
    b = await startBackend("backend-b.test", {
      allowInsecureAuth: true,
      onAuth(auth, _session, cb) {
        methods.push(auth.method);
        if (auth.password === "secret") cb(null, { user: auth.username });
        else cb(new Error("Invalid username or password"));
      },
    });
  });
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await a.close();
    await b.close();
  });

  describe("by EHLO (default)", () => {
    beforeEach(async () => {
      p = await startSmtpProxy({
        routes: [
          { name: "a", listener: "mail", match: { ehlo: "*.a.example" }, targets: [`127.0.0.1:${a.port}`] },
          { name: "b", listener: "mail", match: { ehlo: "*.b.example" }, targets: [`127.0.0.1:${b.port}`] },
        ],
      });
    });

    it("delivers to the backend chosen by the EHLO name", async () => {
      for (const [name, expectA, expectB] of [["mx1.b.example", 0, 1], ["MX2.A.example", 1, 1]] as const) {
        const t = transport(p!.port(), { name });
        const info = await t.sendMail({ from: "x@sender.example", to: "y@dest.example", subject: "hi", text: "hello" });
        t.close();
        expect(info.rejected).to.deep.equal([]);
        expect(a.received).to.have.length(expectA);
        expect(b.received).to.have.length(expectB);
      }
      expect(b.received[0]!.helo).to.equal("mx1.b.example");
      expect(a.received[0]!.helo.toLowerCase()).to.equal("mx2.a.example");
    });

    it("passes AUTH through to the backend, challenges and all (LOGIN)", async () => {
      const t = transport(p!.port(), { name: "mx.b.example", auth: { user: "u@b.example", pass: "secret" }, authMethod: "LOGIN" });
      await t.sendMail({ from: "u@b.example", to: "r@dest.example", subject: "s", text: "t" });
      t.close();
      expect(methods).to.deep.equal(["LOGIN"]);
      expect(b.received.map((m) => m.user)).to.deep.equal(["u@b.example"]);
    });

    it("answers an EHLO name with no route with 554 5.7.1 and keeps the session", async () => {
      const c = await RawClient.open(p!.port());
      await c.waitReplies(1);
      expect(c.replies[0]!.code).to.equal(220);
      expect(c.replies[0]!.lines[0]).to.equal("proxy.test ESMTP");
      const r = await c.command("EHLO unknown.example");
      expect(r.code).to.equal(554);
      expect(r.lines[0]).to.match(/^5\.7\.1 /);
      expect((await c.command("EHLO mx.a.example")).code).to.equal(250);
      expect((await c.command("QUIT")).code).to.equal(221);
      await c.waitClosed();
      expect(a.sessions).to.equal(1);
    });

    it("relays the backend's capabilities adjusted: no STARTTLS without listener tls, SIZE and PIPELINING passed", async () => {
      const c = await RawClient.open(p!.port());
      await c.waitReplies(1);
      const r = await c.command("EHLO mx.a.example");
      const keywords = r.lines.slice(1).map((l) => l.split(" ")[0]);
      expect(r.lines[0]).to.equal("proxy.test greets mx.a.example");
      // smtp-server's own list, minus what the proxy does not pass on
      expect(keywords).to.include.members(["PIPELINING", "8BITMIME", "SMTPUTF8", "AUTH"]);
      expect(keywords).to.not.include("STARTTLS");
      await c.command("QUIT");
      await c.waitClosed();
    });
  });

  describe("by recipient domain", () => {
    beforeEach(async () => {
      p = await startSmtpProxy({
        options: { routeBy: "rcptDomain", maxMessageSize: 1_000_000 },
        routes: [
          { name: "a", listener: "mail", match: { rcptDomain: "a.example" }, targets: [`127.0.0.1:${a.port}`] },
          { name: "b", listener: "mail", match: { rcptDomain: "*.b.example" }, targets: [`127.0.0.1:${b.port}`] },
        ],
      });
    });

    it("answers EHLO itself, holds MAIL until the first RCPT, and sends a second domain's recipient back with 451 4.3.0", async () => {
      const c = await RawClient.open(p!.port());
      await c.waitReplies(1);
      const ehlo = await c.command("EHLO client.example");
      expect(ehlo.lines.slice(1)).to.deep.equal(["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE 1000000"]);
      expect(a.sessions + b.sessions).to.equal(0);
      expect((await c.command("MAIL FROM:<s@sender.example>")).code).to.equal(250);
      expect(a.sessions + b.sessions).to.equal(0);
      expect((await c.command("RCPT TO:<u1@mx.b.example>")).code).to.equal(250);
      const second = await c.command("RCPT TO:<u2@a.example>");
      expect(second.code).to.equal(451);
      expect(second.lines[0]).to.match(/^4\.3\.0 /);
      expect((await c.command("RCPT TO:<u3@MX.B.example>")).code).to.equal(250);
      expect((await c.command("DATA")).code).to.equal(354);
      expect((await c.command("Subject: one\r\n\r\nbody\r\n.")).code).to.equal(250);
      // the recipient sent back goes in its own transaction, to the other backend
      expect((await c.command("MAIL FROM:<s@sender.example>")).code).to.equal(250);
      expect((await c.command("RCPT TO:<u2@a.example>")).code).to.equal(250);
      expect((await c.command("DATA")).code).to.equal(354);
      expect((await c.command("Subject: two\r\n\r\nbody\r\n.")).code).to.equal(250);
      expect((await c.command("QUIT")).code).to.equal(221);
      await c.waitClosed();
      expect(b.received.map((m) => m.to)).to.deep.equal([["u1@mx.b.example", "u3@MX.B.example"]]);
      expect(a.received.map((m) => m.to)).to.deep.equal([["u2@a.example"]]);
      expect(a.received[0]!.from).to.equal("s@sender.example");
    });

    it("gives nodemailer 451 for the second domain (it reports it rejected) and delivers the first", async () => {
      const t = transport(p!.port());
      const info = await t.sendMail({ from: "s@sender.example", to: ["x@a.example", "y@q.b.example"], subject: "s", text: "t" });
      t.close();
      expect(info.accepted).to.deep.equal(["x@a.example"]);
      expect(info.rejected).to.deep.equal(["y@q.b.example"]);
      expect(a.received).to.have.length(1);
    });

    it("refuses an unknown domain with 550 5.1.2 (or 451 with noRoute: defer) without a backend session", async () => {
      const c = await RawClient.open(p!.port());
      await c.waitReplies(1);
      await c.command("EHLO client.example");
      await c.command("MAIL FROM:<s@sender.example>");
      const r = await c.command("RCPT TO:<u@nowhere.example>");
      expect(r.code).to.equal(550);
      expect(r.lines[0]).to.match(/^5\.1\.2 /);
      expect((await c.command("DATA")).code).to.equal(554);
      expect((await c.command("QUIT")).code).to.equal(221);
      await c.waitClosed();
      expect(a.sessions + b.sessions).to.equal(0);
      await expectNoActiveConnections(p!.proxy);
      p!.proxy.reconfigureListener("mail", { options: { routeBy: "rcptDomain", noRoute: "defer" } });
      const d = await RawClient.open(p!.port());
      await d.waitReplies(1);
      await d.command("EHLO client.example");
      await d.command("MAIL FROM:<s@sender.example>");
      const deferred = await d.command("RCPT TO:<u@nowhere.example>");
      expect(deferred.code).to.equal(451);
      d.close();
    });
  });

  describe("by AUTH user", () => {
    beforeEach(async () => {
      p = await startSmtpProxy({
        options: { routeBy: "authUser" },
        listener: { tls: { cert: cert.cert, key: cert.key } },
        routes: [
          { name: "a", listener: "mail", match: { authUser: "*@a.example" }, targets: [`127.0.0.1:${a.port}`] },
          { name: "b", listener: "mail", match: { authUser: "*@b.example" }, targets: [`127.0.0.1:${b.port}`] },
        ],
      });
    });

    it("offers AUTH only after STARTTLS, routes by the user and lets the backend decide (PLAIN and LOGIN)", async () => {
      const c = await RawClient.open(p!.port());
      await c.waitReplies(1);
      const plain = await c.command("EHLO client.example");
      expect(plain.lines.slice(1)).to.include("STARTTLS");
      expect(plain.lines.join(" ")).to.not.include("AUTH");
      expect((await c.command("AUTH PLAIN " + Buffer.from("\0u@b.example\0secret").toString("base64"))).code).to.equal(530);
      expect((await c.command("MAIL FROM:<u@b.example>")).code).to.equal(530);
      c.close();

      for (const method of ["PLAIN", "LOGIN"]) {
        const t = transport(p!.port(), { ca: ca.cert, auth: { user: "u@b.example", pass: "secret" }, authMethod: method });
        const info = await t.sendMail({ from: "u@b.example", to: "r@dest.example", subject: "s", text: "t" });
        t.close();
        expect(info.accepted).to.deep.equal(["r@dest.example"]);
      }
      expect(b.received.map((m) => m.user)).to.deep.equal(["u@b.example", "u@b.example"]);
      expect(methods).to.deep.equal(["PLAIN", "LOGIN"]);
      expect(a.received).to.have.length(0);
    });

    it("relays the backend's refusal of a wrong password", async () => {
      const t = transport(p!.port(), { ca: ca.cert, auth: { user: "u@b.example", pass: "wrong" } });
      let err: (Error & { responseCode?: number }) | undefined;
      try {
        await t.sendMail({ from: "u@b.example", to: "r@dest.example", subject: "s", text: "t" });
      } catch (e) {
        err = e as Error;
      }
      t.close();
      expect(err?.responseCode).to.equal(535);
      expect(b.received).to.have.length(0);
    });

    it("refuses a user with no route with 554 and keeps the session", async () => {
      const c = await RawClient.open(p!.port());
      await c.waitReplies(1);
      await c.command("EHLO client.example");
      expect((await c.command("STARTTLS")).code).to.equal(220);
      await c.startTls(ca.cert);
      const ehlo = await c.command("EHLO client.example");
      expect(ehlo.lines.slice(1)).to.include("AUTH PLAIN LOGIN");
      expect(ehlo.lines.slice(1)).to.not.include("STARTTLS");
      expect(codes([await c.command("AUTH PLAIN " + Buffer.from("\0u@c.example\0x").toString("base64"))])).to.deep.equal([554]);
      expect((await c.command("QUIT")).code).to.equal(221);
      await c.waitClosed();
    });
  });
});
