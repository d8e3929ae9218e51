/**
 * The deadlines an SMTP session adds to its connection (core releases them with the connection).
 */
import { defineConnectionTimer } from "@switchyard/core";

export const SmtpTimer = Object.freeze({
  /** a client command or DATA line awaited (RFC 5321 §4.5.3.2 timeouts) */
  READ: defineConnectionTimer("smtp-read"),
  /** the client socket draining what the proxy wrote */
  CLIENT_DRAIN: defineConnectionTimer("smtp-client-drain"),
  /** a plugin's SMTP hook call */
  HOOK: defineConnectionTimer("smtp-hook"),
  /** the last reply written before the session closes */
  CLOSE: defineConnectionTimer("smtp-close"),
  /** the backend socket draining what the proxy wrote */
  BACKEND_DRAIN: defineConnectionTimer("smtp-backend-drain"),
  /** a backend reply awaited */
  BACKEND_REPLY: defineConnectionTimer("smtp-backend-reply"),
});
