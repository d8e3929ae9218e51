// The README's example, compiled by `tsc -b` with the tests (type-level check; not run).
import { Proxy } from "@switchyard/core";
import { SmtpProtocol, verdict } from "@switchyard/protocol-smtp";

export function readmeExample(): Proxy {
  const proxy = new Proxy({
    listeners: [{ name: "mx", protocol: "smtp", port: 2525, options: { routeBy: "rcptDomain", maxMessageSize: 25_000_000 } }],
    routes: [
      { name: "a", listener: "mx", match: { rcptDomain: "a.example" }, targets: ["10.0.0.10:25"] },
      { name: "b", listener: "mx", match: { rcptDomain: "*.b.example" }, targets: ["10.0.0.20:25", "10.0.0.21:25"] },
    ],
    plugins: [new SmtpProtocol({ hostname: "mx.example.net" })],
  });
  SmtpProtocol.getHooks(proxy).onMailFrom.tap("NoSpoof", (ctx) =>
    ctx.address.endsWith("@a.example") && ctx.session.authUser === undefined ? verdict.reject(550, "5.7.1", "Sender not allowed") : undefined,
  );
  return proxy;
}
