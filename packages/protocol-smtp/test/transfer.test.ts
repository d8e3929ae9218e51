import { expect } from "chai";
import { expectNoActiveConnections, type StartedProxy } from "@switchyard/test-utils";
import { startRawBackend } from "./raw-backend.js";
import { RawClient, closeRawClients, codes, startBackend, startSmtpProxy, transport, type Backend } from "./helpers.js";

/** A message of about `bytes` bytes, CRLF lines of 76 characters, some starting with dots. */
function bigMessage(bytes: number): Buffer {
  const lines = ["From: s@sender.example", "To: r@dest.example", "Subject: big", ""];
  let n = 0;
  let size = lines.join("\r\n").length;
  while (size < bytes) {
    const line = n % 50 === 0 ? "." + "d".repeat(75) : n % 77 === 0 ? "." : `${n}`.padEnd(76, "x");
    lines.push(line);
    size += line.length + 2;
    n++;
  }
  return Buffer.from(lines.join("\r\n") + "\r\n");
}

describe("smtp transfer", () => {
  let a: Backend;
  let p: StartedProxy;
  beforeEach(async () => {
    a = await startBackend("backend-a.test");
    p = await startSmtpProxy({ routes: [{ name: "a", listener: "mail", targets: [`127.0.0.1:${a.port}`] }] });
  });
  afterEach(async () => {
    closeRawClients();
    await expectNoActiveConnections(p.proxy);
    await p.proxy.close({ timeout: 1000 });
    await a.close();
  });

  it("relays a 10 MB message byte-identical, dot-stuffed lines included", async function () {
    this.timeout(60_000);
    const raw = bigMessage(10 * 1024 * 1024);
    const t = transport(p.port());
    await t.sendMail({ envelope: { from: "s@sender.example", to: ["r@dest.example"] }, raw });
    t.close();
    expect(a.received).to.have.length(1);
    const got = a.received[0]!.data;
    expect(got.length).to.equal(raw.length);
    expect(got.equals(raw)).to.equal(true);
  });

  it("leaves dot-stuffing as the client sent it: the backend gets the very bytes", async () => {
    const raw = await startRawBackend();
    await p.proxy.close({ timeout: 1000 });
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    await c.command("EHLO client.example");
    await c.command("MAIL FROM:<s@sender.example>");
    await c.command("RCPT TO:<r@dest.example>");
    expect((await c.command("DATA")).code).to.equal(354);
    const body = "Subject: dots\r\n\r\n..\r\n...x\r\n.y\r\n..\r\nend\r\n";
    expect((await c.command(body + ".")).code).to.equal(250);
    await c.command("QUIT");
    await c.waitClosed();
    expect(raw.messages.map((m) => m.toString())).to.deep.equal([body]);
    await raw.close();
  });

  it("answers a whole pipelined transaction sent in one write: every reply, in order, once", async () => {
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    const ehlo = await c.command("EHLO client.example");
    expect(ehlo.lines).to.include("PIPELINING");
    c.send(
      "MAIL FROM:<s@sender.example>\r\nRCPT TO:<r1@dest.example>\r\nRCPT TO:<r2@dest.example>\r\nDATA\r\n" +
        "Subject: p\r\n\r\nbody\r\n.\r\n" +
        "MAIL FROM:<t@sender.example>\r\nRCPT TO:<r3@dest.example>\r\nBOGUS\r\nRSET\r\nNOOP\r\nQUIT\r\n",
    );
    const all = await c.waitReplies(12);
    await c.waitClosed();
    expect(codes(all)).to.deep.equal([220, 250, 250, 250, 250, 354, 250, 250, 250, 502, 250, 250, 221].slice(0, 12));
    expect(c.replies).to.have.length(13);
    expect(c.replies[12]!.code).to.equal(221);
    expect(a.received).to.have.length(1);
    expect(a.received[0]!.to).to.deep.equal(["r1@dest.example", "r2@dest.example"]);
  });

  it("relays several pipelined messages from nodemailer on one connection (pool)", async () => {
    const nodemailer = (await import("nodemailer")).default;
    const t = nodemailer.createTransport({ host: "127.0.0.1", port: p.port(), ignoreTLS: true, pool: true, maxConnections: 1, name: "client.example" });
    await Promise.all(Array.from({ length: 5 }, (_, i) => t.sendMail({ from: "s@sender.example", to: `r${i}@dest.example`, subject: `m${i}`, text: `text ${i}` })));
    t.close();
    expect(a.received).to.have.length(5);
    expect(a.sessions).to.equal(1);
  });

  it("relays BDAT chunks by exact byte count, the chunk bytes never read as commands", async () => {
    const raw = await startRawBackend();
    await p.proxy.close({ timeout: 1000 });
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }] });
    const c = await RawClient.open(p.port());
    await c.waitReplies(1);
    const ehlo = await c.command("EHLO client.example");
    expect(ehlo.lines).to.include("CHUNKING");
    const part1 = "Subject: b\r\n\r\nQUIT\r\n.\r\n";
    const part2 = "RSET\r\nlast";
    c.send(`MAIL FROM:<s@sender.example>\r\nRCPT TO:<r@dest.example>\r\nBDAT ${part1.length}\r\n${part1}BDAT ${part2.length} LAST\r\n${part2}NOOP\r\n`);
    const rs = await c.waitReplies(7);
    expect(codes(rs)).to.deep.equal([220, 250, 250, 250, 250, 250, 250]);
    await c.command("QUIT");
    await c.waitClosed();
    expect(raw.messages.map((m) => m.toString())).to.deep.equal([part1 + part2]);
    // the chunk's bytes reached the backend as data, not as the commands they look like
    expect(raw.sessions[0]).to.not.include("RSET");
    await raw.close();
  });
});
