import { expect } from "chai";
import { expectNoActiveConnections, type StartedProxy } from "@switchyard/test-utils";
import { startBackend, startSmtpProxy, transport, type Backend } from "./helpers.js";

describe("smtp: routing by EHLO", () => {
  let a: Backend;
  let b: Backend;
  let p: StartedProxy;
  beforeEach(async () => {
    a = await startBackend("backend-a.test");
    b = await startBackend("backend-b.test");
    p = await startSmtpProxy({
      routes: [
        { name: "a", listener: "mail", match: { ehlo: "*.a.example" }, targets: [`127.0.0.1:${a.port}`] },
        { name: "b", listener: "mail", match: { ehlo: "*.b.example" }, targets: [`127.0.0.1:${b.port}`] },
      ],
    });
  });
  afterEach(async () => {
    await p.proxy.close({ timeout: 1000 });
    await a.close();
    await b.close();
  });

  it("delivers to the backend chosen by the EHLO name", async () => {
    const t = transport(p.port(), { name: "mx1.b.example" });
    const info = await t.sendMail({ from: "x@sender.example", to: "y@dest.example", subject: "hi", text: "hello\r\n" });
    t.close();
    expect(info.rejected).to.deep.equal([]);
    expect(a.received).to.have.length(0);
    expect(b.received).to.have.length(1);
    expect(b.received[0]!.helo).to.equal("mx1.b.example");
    expect(b.received[0]!.to).to.deep.equal(["y@dest.example"]);
    await expectNoActiveConnections(p.proxy);
  });
});
