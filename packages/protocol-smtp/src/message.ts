/**
 * An SMTP transaction as a message of core's `onRequest` (protocol "smtp"): generic plugins
 * (access lists, rate limits) see one per transaction, when its envelope is complete (at DATA
 * or the first BDAT), before any message byte goes to the backend.
 */
import type { ProxyRequest } from "@switchyard/core";

export interface SmtpTransactionMessage extends ProxyRequest {
  readonly protocol: "smtp";
  /** EHLO/HELO name */
  readonly helo: string | undefined;
  /** reverse-path ("" for `<>`) */
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  /** user name when the proxy routed by AUTH */
  readonly authUser: string | undefined;
}

export function isSmtpTransaction(req: ProxyRequest): req is SmtpTransactionMessage {
  return req.protocol === "smtp";
}
