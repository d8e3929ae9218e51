import { expect } from "chai";
import nodemailer from "nodemailer";
import { cleanup, client, startCli } from "./helpers.js";

describe("switchyard with no config (embedded demo)", () => {
  afterEach(cleanup);

  it("starts demo backends behind the proxy, serves, and exits 0 on SIGTERM", async () => {
    const cli = startCli([]);
    await cli.waitFor(/^Ctrl-C stops it/);
    const ports = await cli.listening(1);
    expect(cli.stdout()).to.match(/^listening tcp tcp 127\.0\.0\.1:\d+$/m);
    expect(cli.stdout()).to.include(`nc 127.0.0.1 ${ports.tcp}`);

    const c = await client(ports.tcp!);
    expect(await c.ask("ping\n")).to.equal("ping\n");
    c.socket.end();

    if (ports.http !== undefined) {
      expect(cli.stdout()).to.include(`curl http://127.0.0.1:${ports.http}/`);
      const res = await fetch(`http://127.0.0.1:${ports.http}/hi`);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.equal("hello from the switchyard demo backend: GET /hi\n");
    } else {
      expect(cli.stdout()).to.include("install @switchyard/protocol-http");
    }
    // the SMTP route: @switchyard/protocol-smtp is a dependency of the command, and the demo runs
    // its own mail sink
    expect(ports.smtp, "an smtp listener").to.be.a("number");
    expect(cli.stdout()).to.include(`curl -sS --crlf smtp://127.0.0.1:${ports.smtp} `);
    const transport = nodemailer.createTransport({ host: "127.0.0.1", port: ports.smtp!, secure: false, ignoreTLS: true, name: "client.demo.test" });
    try {
      const info = await transport.sendMail({ from: "me@demo.test", to: ["you@demo.test", "them@demo.test"], subject: "demo", text: "hello" });
      expect(info.response).to.match(/^250 /);
    } finally {
      transport.close();
    }
    await cli.waitFor(/^demo mail backend: a message from <me@demo\.test> to <you@demo\.test>, <them@demo\.test>, \d+ bytes \(dropped\)$/);

    await cli.waitFor(/"msg":"connection\.close".*"route":"echo"/);
    await cli.waitFor(/"msg":"connection\.close".*"route":"mail"/);
    cli.process.kill("SIGTERM");
    expect(await cli.exited).to.equal(0);
  });
});
