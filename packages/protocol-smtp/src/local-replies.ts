/**
 * Replies the proxy gives itself (the README's table): for a tap's verdict, for a key with no
 * route, and for a direct response an `onRequest` tap set. Pure.
 */
import { ResolveErrorKind } from "@switchyard/core";
import type { SmtpVerdict } from "./hooks.js";

/** A reply the proxy gives itself. */
export interface LocalReply {
  code: number;
  enhanced: string;
  text: string;
}

/** The reply of a tap's verdict (defaults per action). */
export function localOf(v: SmtpVerdict): LocalReply {
  if (v.action === "reject") return { code: v.code ?? 550, enhanced: v.enhanced ?? "5.7.1", text: v.text ?? "Rejected" };
  if (v.action === "defer") return { code: v.code ?? 451, enhanced: v.enhanced ?? "4.7.1", text: v.text ?? "Try again later" };
  if (v.action === "disconnect") return { code: v.code ?? 421, enhanced: v.enhanced ?? "4.7.0", text: v.text ?? "Closing connection" };
  return { code: 250, enhanced: "2.0.0", text: "Ok" };
}

/** The reply when a routing key has no route (or the resolver failed), per `noRoute`. */
export function noRouteReply(kind: ResolveErrorKind, what: "ehlo" | "rcpt" | "auth", policy: "reject" | "defer"): LocalReply {
  if (kind === ResolveErrorKind.NOT_FOUND || kind === ResolveErrorKind.FORBIDDEN) {
    if (policy === "defer" && kind === ResolveErrorKind.NOT_FOUND) return { code: 451, enhanced: "4.3.0", text: "No route for this destination, try again later" };
    if (what === "rcpt") return { code: 550, enhanced: "5.1.2", text: "Recipient address rejected: domain not served here" };
    return { code: 554, enhanced: "5.7.1", text: what === "auth" ? "No service for this user" : "No service for this domain" };
  }
  return { code: 451, enhanced: "4.4.3", text: "Routing temporarily unavailable, try again later" };
}

/** An onRequest direct response's status as an SMTP reply (SMTP codes as they are; HTTP-ish ones mapped). */
export function smtpCodeOf(status: number, text: string): LocalReply {
  if (status >= 400 && status < 600 && status % 100 < 60) {
    const cls = Math.floor(status / 100);
    return { code: status, enhanced: `${cls}.7.1`, text };
  }
  return status >= 500 ? { code: 554, enhanced: "5.7.1", text } : { code: 451, enhanced: "4.7.1", text };
}
