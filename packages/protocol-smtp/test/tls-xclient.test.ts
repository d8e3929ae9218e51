import { expect } from "chai";
import nodemailer from "nodemailer";
import { createTestCa, expectNoActiveConnections, type StartedProxy } from "@switchyard/test-utils";
import { SmtpProtocol } from "@switchyard/protocol-smtp";
import { RawClient, closeRawClients, codes, startBackend, startSmtpProxy, transport, type Backend } from "./helpers.js";
import { startRawBackend, type RawBackend } from "./raw-backend.js";

const ca = createTestCa();
const cert = ca.issue({ commonName: "proxy.test" });

describe("smtp STARTTLS toward the client", () => {
  let a: Backend;
  let p: StartedProxy | undefined;
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await a.close();
  });

  it("upgrades in place with a certificate made at test time; nodemailer delivers over TLS", async () => {
    a = await startBackend("backend-a.test");
    const tlsSeen: boolean[] = [];
    p = await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`] }], listener: { tls: { cert: cert.cert, key: cert.key } } });
    SmtpProtocol.getHooks(p.proxy).onMailFrom.tap("Observer", (ctx) => {
      tlsSeen.push(ctx.session.tls);
      return undefined;
    });
    const t = transport(p.port(), { ca: ca.cert });
    const info = await t.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "tls", text: "secret" });
    t.close();
    expect(info.accepted).to.deep.equal(["r@dest.example"]);
    expect(tlsSeen).to.deep.equal([true]);
    expect(a.received).to.have.length(1);
  });

  it("fills the client certificate's identity after STARTTLS (listener verifyClient optional): the close event carries it", async () => {
    a = await startBackend("backend-a.test");
    const alice = ca.issue({ commonName: "alice", client: true });
    p = await startSmtpProxy({
      routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`] }],
      listener: { tls: { cert: cert.cert, key: cert.key, ca: ca.cert, verifyClient: "optional" } },
    });
    const closed: Array<{ tls: boolean; identity: { subject: string; verified: boolean } | undefined }> = [];
    p.proxy.events.on("connectionClose", (c) => closed.push({ tls: c.tls, identity: c.identity }));
    // one session with a client certificate, one without (optional: both are served)
    const withCert = nodemailer.createTransport({
      host: "127.0.0.1",
      port: p.port(),
      secure: false,
      name: "client.example",
      requireTLS: true,
      tls: { ca: ca.cert, servername: "proxy.test", cert: alice.cert, key: alice.key },
    });
    await withCert.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "mtls", text: "hi" });
    withCert.close();
    const plain = transport(p.port(), { ca: ca.cert });
    await plain.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "tls", text: "hi" });
    plain.close();
    await expectNoActiveConnections(p.proxy);
    expect(closed).to.have.length(2);
    expect(closed.every((c) => c.tls)).to.equal(true);
    expect(closed.map((c) => c.identity && { subject: c.identity.subject, verified: c.identity.verified })).to.deep.equal([
      { subject: "CN=alice", verified: true },
      undefined,
    ]);
    expect(a.received).to.have.length(2);
  });

  it("discards plaintext pipelined after STARTTLS (CVE-2011-0411) and wants a new EHLO", async () => {
    const raw: RawBackend = await startRawBackend();
    a = { close: () => raw.close() } as Backend;
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }], listener: { tls: { cert: cert.cert, key: cert.key } } });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    const ehlo = await c.command("EHLO client.example");
    expect(ehlo.lines).to.include("STARTTLS");
    c.send("STARTTLS\r\nMAIL FROM:<evil@sender.example>\r\nRCPT TO:<victim@dest.example>\r\n");
    await c.waitReplies(3);
    expect(c.replies[2]!.code).to.equal(220);
    await c.startTls(ca.cert);
    expect((await c.command("MAIL FROM:<s@sender.example>")).code).to.equal(503);
    const again = await c.command("EHLO client.example");
    expect(again.lines).to.not.include("STARTTLS");
    expect((await c.command("STARTTLS")).code).to.equal(502);
    expect((await c.command("MAIL FROM:<s@sender.example>")).code).to.equal(250);
    expect((await c.command("QUIT")).code).to.equal(221);
    await c.waitClosed();
    // exactly one reply per command, none for the injected lines
    expect(codes(c.replies)).to.deep.equal([220, 250, 220, 503, 250, 502, 250, 221]);
    expect(raw.sessions.flat().some((l) => l.includes("evil") || l.includes("victim"))).to.equal(false);
  });

  it("implicitTls: TLS from the first byte (port 465 style), nodemailer with secure: true", async () => {
    a = await startBackend("backend-a.test");
    p = await startSmtpProxy({
      routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`] }],
      listener: { tls: { cert: cert.cert, key: cert.key } },
      options: { implicitTls: true },
    });
    const nodemailer = (await import("nodemailer")).default;
    const t = nodemailer.createTransport({ host: "127.0.0.1", port: p.port(), secure: true, tls: { ca: ca.cert, servername: "proxy.test" }, name: "client.example" });
    const info = await t.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "465", text: "x" });
    t.close();
    expect(info.accepted).to.deep.equal(["r@dest.example"]);
    expect(a.received).to.have.length(1);
  });

  it("answers STARTTLS with 502 on a listener without tls", async () => {
    a = await startBackend("backend-a.test");
    p = await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`] }] });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    await c.command("EHLO client.example");
    expect((await c.command("STARTTLS")).code).to.equal(502);
    c.close();
  });
});

describe("smtp STARTTLS toward the backend (route option backendStartTls, the target's tls keys)", () => {
  let a: Backend;
  let p: StartedProxy | undefined;
  const backendCert = ca.issue({ commonName: "backend.test" });
  beforeEach(async () => {
    a = await startBackend("backend.test", { disabledCommands: [], key: backendCert.key, cert: backendCert.cert });
  });
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await a.close();
  });

  it("upgrades the backend session and verifies its certificate; the client never sees the backend's STARTTLS", async () => {
    p = await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [{ host: "127.0.0.1", port: a.port, tls: { ca: ca.cert, servername: "backend.test" } }], options: { backendStartTls: true } }] });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    const ehlo = await c.command("EHLO client.example");
    expect(ehlo.lines).to.not.include("STARTTLS");
    c.close();
    const t = transport(p.port());
    await t.sendMail({ from: "s@sender.example", to: "r@dest.example", subject: "s", text: "t" });
    t.close();
    expect(a.received.map((m) => m.secure)).to.deep.equal([true]);
  });

  it("fails the connect with 421 when verification fails, or when a required STARTTLS is not offered", async () => {
    p = await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [{ host: "127.0.0.1", port: a.port, tls: { ca: ca.cert, servername: "wrong.test" } }], options: { backendStartTls: true } }] });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    c.send("EHLO client.example\r\n");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 421]);
    expect(a.received).to.have.length(0);
    await expectNoActiveConnections(p.proxy);
    await p.proxy.close({ timeout: 1000 });
    const plain = await startBackend("plain.test");
    p = await startSmtpProxy({ routes: [{ name: "p", listener: "mail", targets: [`127.0.0.1:${plain.port}`], options: { backendStartTls: true } }] });
    const d = await RawClient.open(p.port());
    await d.waitReplies(1);
    d.send("EHLO client.example\r\n");
    await d.waitClosed();
    expect(codes(d.replies)).to.deep.equal([220, 421]);
    await plain.close();
  });

  it("rejects a bad backendStartTls route option when the proxy is built", async () => {
    let err: Error | undefined;
    try {
      await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`], options: { backendStartTls: { requierd: true } } }] });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/did you mean "required"/);
    err = undefined;
    try {
      await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`], options: { backendStartTls: { ca: ca.cert } } }] });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.contain("target's tls");
  });
});

describe("smtp XCLIENT / XFORWARD toward the backend", () => {
  let raw: RawBackend;
  let p: StartedProxy | undefined;
  afterEach(async () => {
    closeRawClients();
    if (p) await expectNoActiveConnections(p.proxy);
    await p?.proxy.close({ timeout: 1000 });
    p = undefined;
    await raw.close();
  });

  async function session(): Promise<{ lines: string[]; port: number }> {
    const c = await RawClient.open(p!.port());
    await c.waitReplies(1);
    const port = (c.socket as import("node:net").Socket).localPort!;
    await c.command("EHLO client+x=y.example");
    await c.command("MAIL FROM:<s@sender.example>");
    await c.command("RCPT TO:<r@dest.example>");
    await c.command("DATA");
    expect((await c.command("Subject: x\r\n\r\nhi\r\n.")).code).to.equal(250);
    await c.command("QUIT");
    await c.waitClosed();
    return { lines: raw.sessions[0]!, port };
  }

  it("sends XCLIENT with the real client address, xtext-encoded, then EHLO again", async () => {
    raw = await startRawBackend({ caps: ["PIPELINING", "XCLIENT NAME ADDR PORT PROTO HELO LOGIN"] });
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
    const { lines, port } = await session();
    expect(lines.slice(0, 4)).to.deep.equal([
      "EHLO client+x=y.example",
      `XCLIENT ADDR=127.0.0.1 PORT=${port} NAME=[UNAVAILABLE] HELO=client+2Bx+3Dy.example PROTO=ESMTP`,
      "EHLO client+x=y.example",
      "MAIL FROM:<s@sender.example>",
    ]);
  });

  it("sends XFORWARD before each MAIL when the backend offers only that", async () => {
    raw = await startRawBackend({ caps: ["PIPELINING", "XFORWARD NAME ADDR PROTO HELO"] });
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
    const { lines } = await session();
    expect(lines.slice(0, 3)).to.deep.equal([
      "EHLO client+x=y.example",
      "XFORWARD ADDR=127.0.0.1 NAME=[UNAVAILABLE] HELO=client+2Bx+3Dy.example PROTO=ESMTP",
      "MAIL FROM:<s@sender.example>",
    ]);
  });

  it("never passes a client's own XCLIENT on", async () => {
    raw = await startRawBackend({ caps: ["XCLIENT ADDR"] });
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }], options: { forwardClient: "none" } });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    await c.command("EHLO client.example");
    expect((await c.command("XCLIENT ADDR=10.9.9.9")).code).to.equal(502);
    await c.command("QUIT");
    await c.waitClosed();
    expect(codes(c.replies)).to.deep.equal([220, 250, 502, 221]);
    expect(raw.sessions[0]!.some((l) => l.startsWith("XCLIENT"))).to.equal(false);
  });
});
