export { SmtpProtocol, type SmtpProtocolListenerOptions } from "./protocol.js";
export type { SmtpListenerOptions, SmtpRouteBy, SmtpRouteOptions, BackendStartTlsOptions } from "./options.js";
export {
  verdict,
  type SmtpHooks,
  type SmtpVerdict,
  type SmtpSessionInfo,
  type EhloContext,
  type MailFromContext,
  type RcptToContext,
  type DataContext,
} from "./hooks.js";
export { isSmtpTransaction, type SmtpTransactionMessage } from "./message.js";
export { CommandLineReader, type LineEvent } from "./command-reader.js";
export { DataReader, type DataStep, type DataViolation, type BareNewlinePolicy } from "./data-reader.js";
export { ReplyParser, ReplyParseError, formatReply, serializeReply, type SmtpReply } from "./reply.js";
export { xtext, unxtext } from "./command.js";
