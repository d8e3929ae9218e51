// Type-level checks of the public API, compiled by `tsc -b` with the tests (not run).
import type { Proxy } from "@switchyard/core";
import { SmtpProtocol, verdict, type SmtpVerdict } from "@switchyard/protocol-smtp";

export function typeChecks(proxy: Proxy): void {
  const hooks = SmtpProtocol.getHooks(proxy);
  hooks.onRcptTo.tap("Ok", () => verdict.reject(550, "5.1.1", "no"));
  hooks.onMailFrom.tapPromise("Ok", async () => undefined);
  // @ts-expect-error a tap answers a verdict or undefined, not a bare code
  hooks.onRcptTo.tap("Bad", () => 550);
  // @ts-expect-error rewrite takes the new value as a string
  verdict.rewrite(1);
  // @ts-expect-error an action outside accept / reject / defer / disconnect / rewrite
  const bad: SmtpVerdict = { action: "bounce" };
  // @ts-expect-error a code is a number
  const badCode: SmtpVerdict = { action: "reject", code: "550" };
  // @ts-expect-error the hooks are frozen: no new ones by assignment
  hooks.onQuit = hooks.onEhlo;
  // @ts-expect-error routeBy is one of ehlo / rcptDomain / authUser
  new SmtpProtocol({ routeBy: "subject" });
  void bad;
  void badCode;
}
