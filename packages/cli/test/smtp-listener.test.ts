import { expect } from "chai";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import nodemailer from "nodemailer";
import { SMTPServer } from "smtp-server";
import { cleanup, runCli, startCli, tmpFile } from "./helpers.js";

/** An smtp-server on 127.0.0.1:0 that accepts every message and keeps what it received. */
async function mailBackend(name: string): Promise<{ port: number; messages: Array<{ helo: string; to: string[]; data: string }>; close(): Promise<void> }> {
  const messages: Array<{ helo: string; to: string[]; data: string }> = [];
  const server = new SMTPServer({
    name,
    logger: false,
    disabledCommands: ["STARTTLS"],
    authOptional: true,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        messages.push({ helo: session.hostNameAppearsAs, to: session.envelope.rcptTo.map((r) => r.address), data: Buffer.concat(chunks).toString() });
        cb(null);
      });
    },
  });
  server.on("error", () => {});
  server.listen(0, "127.0.0.1");
  await once(server.server, "listening");
  return { port: (server.server.address() as AddressInfo).port, messages, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Sends one message through the proxy, saying `ehlo` in EHLO. */
async function send(port: number, ehlo: string, to: string, text: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: "127.0.0.1", port, name: ehlo, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ from: "sender@client.test", to, subject: "through switchyard", text });
    return info.response;
  } finally {
    transport.close();
  }
}

describe("smtp listeners in a config file (@switchyard/protocol-smtp)", () => {
  const backends: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    await cleanup();
    await Promise.all(backends.splice(0).map((b) => b.close()));
  });

  it("routes by EHLO name to smtp-server backends; nodemailer delivers through the switchyard command", async () => {
    const a = await mailBackend("a.backend.test");
    const b = await mailBackend("b.backend.test");
    backends.push(a, b);
    const file = tmpFile(
      "mail.yaml",
      `listeners:
  - { name: mail, protocol: smtp, host: 127.0.0.1, port: 0, options: { hostname: proxy.test, routeBy: ehlo } }
routes:
  - { name: a, listener: mail, match: { ehlo: "*.a.test" }, targets: ["127.0.0.1:${a.port}"] }
  - { name: b, listener: mail, match: { ehlo: "*.b.test" }, targets: ["127.0.0.1:${b.port}"] }
`,
    );
    expect((await runCli(["check", file])).code).to.equal(0);
    const cli = startCli(["--config", file]);
    const { mail } = await cli.listening(1);

    expect(await send(mail!, "mx.b.test", "rcpt@b.example", "hello B")).to.match(/^250 /);
    expect(await send(mail!, "relay.a.test", "rcpt@a.example", "hello A")).to.match(/^250 /);
    expect(b.messages).to.have.length(1);
    expect(b.messages[0]!.helo).to.equal("mx.b.test");
    expect(b.messages[0]!.to).to.deep.equal(["rcpt@b.example"]);
    expect(b.messages[0]!.data).to.include("hello B");
    expect(a.messages).to.have.length(1);
    expect(a.messages[0]!.data).to.include("hello A");

    // an EHLO name no route matches is refused in SMTP, and nothing reaches a backend
    const refused = await send(mail!, "mx.c.test", "rcpt@c.example", "nowhere").then(
      () => "sent",
      (err: Error & { responseCode?: number }) => String(err.responseCode),
    );
    expect(refused).to.equal("554");
    expect(a.messages.length + b.messages.length).to.equal(2);

    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });

  it("`switchyard check` knows the match keys SMTP registers (ehlo, rcptDomain, authUser) and suggests the closest for a misspelt one", async () => {
    const good = tmpFile(
      "keys.yaml",
      `listeners:
  - { name: mail, protocol: smtp, host: 127.0.0.1, port: 0, options: { routeBy: rcptDomain } }
routes:
  - { listener: mail, match: { rcptDomain: "a.example" }, targets: ["127.0.0.1:2525"] }
  - { listener: mail, match: { authUser: "alice", ehlo: "*.example" }, targets: ["127.0.0.1:2526"] }
`,
    );
    const ok = await runCli(["check", good]);
    expect(ok.stderr).to.equal("");
    expect(ok.code).to.equal(0);

    const bad = tmpFile(
      "bad-keys.yaml",
      `listeners:
  - { name: mail, protocol: smtp, host: 127.0.0.1, port: 0 }
routes:
  - { listener: mail, match: { rcptDomian: "a.example" }, targets: ["127.0.0.1:2525"] }
`,
    );
    const res = await runCli(["check", bad]);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.include('routes[0].match.rcptDomian: unknown match key "rcptDomian" (did you mean "rcptDomain"?)');
  });
});
