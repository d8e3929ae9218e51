/**
 * SMTP-level hooks for plugins, Haraka's model typed: each tap answers a verdict — accept
 * (stop asking, go on), reject (5xx), defer (4xx), disconnect (421 and close), rewrite (replace
 * the value) — or undefined to leave it to the next tap and, last, to the backend.
 * `SmtpProtocol.getHooks(proxy)` returns the set of one proxy (webpack's getHooks pattern).
 */
import { defineHooks, type ConnectionInfo, type Proxy } from "@switchyard/core";
import { AsyncSeriesBailHook } from "tapable";

/** What taps know of the session. */
export interface SmtpSessionInfo {
  readonly connection: ConnectionInfo;
  /** the EHLO/HELO name the client gave (after a rewrite) */
  readonly helo: string | undefined;
  /** the client side is TLS (STARTTLS or a TLS listener) */
  readonly tls: boolean;
  /** the authenticated user name, when the proxy routed by it */
  readonly authUser: string | undefined;
}

export interface EhloContext {
  readonly session: SmtpSessionInfo;
  readonly verb: "EHLO" | "HELO";
  /** the name the client sent */
  readonly domain: string;
}

export interface MailFromContext {
  readonly session: SmtpSessionInfo;
  /** the reverse-path ("" for the null sender `<>`) */
  readonly address: string;
  /** ESMTP parameters as sent ("SIZE=1234 BODY=8BITMIME") */
  readonly params: string;
}

export interface RcptToContext {
  readonly session: SmtpSessionInfo;
  readonly mailFrom: string;
  readonly address: string;
  readonly params: string;
  /** recipients accepted so far in this transaction */
  readonly recipients: readonly string[];
}

export interface DataContext {
  readonly session: SmtpSessionInfo;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  /**
   * The message's header section as sent (CRLF line ends, dot-stuffing as on the wire, without
   * the empty line that ends it). The body is streamed to the backend, never buffered.
   */
  readonly headers: string;
}

/** What a tap answers. `code`, `enhanced` and `text` default per action (550 5.7.1, 451 4.7.1, 421 4.7.0). */
export type SmtpVerdict =
  | { readonly action: "accept" }
  | {
      readonly action: "reject" | "defer" | "disconnect";
      readonly code?: number;
      readonly enhanced?: string;
      readonly text?: string;
    }
  /** onEhlo: the name used for routing and sent on; onMailFrom / onRcptTo: the address; onData: the header section */
  | { readonly action: "rewrite"; readonly value: string };

/** Verdict builders, for taps: `return verdict.reject(550, "5.7.1", "not here")`. */
export const verdict = {
  accept: (): SmtpVerdict => ({ action: "accept" }),
  reject: (code = 550, enhanced = "5.7.1", text = "Rejected"): SmtpVerdict => ({ action: "reject", code, enhanced, text }),
  defer: (code = 451, enhanced = "4.7.1", text = "Try again later"): SmtpVerdict => ({ action: "defer", code, enhanced, text }),
  disconnect: (code = 421, enhanced = "4.7.0", text = "Closing connection"): SmtpVerdict => ({ action: "disconnect", code, enhanced, text }),
  rewrite: (value: string): SmtpVerdict => ({ action: "rewrite", value }),
} as const;

function createSmtpHooks() {
  return {
    /** Fires for EHLO/HELO, before routing by it. `tapPromise` (or `tap`); first verdict wins. */
    onEhlo: new AsyncSeriesBailHook<[EhloContext], SmtpVerdict | undefined>(["context"], "onEhlo"),
    /** Fires for MAIL FROM before it goes to the backend (or is held, routeBy rcptDomain). */
    onMailFrom: new AsyncSeriesBailHook<[MailFromContext], SmtpVerdict | undefined>(["context"], "onMailFrom"),
    /** Fires for each RCPT TO before routing by it and before the backend sees it. */
    onRcptTo: new AsyncSeriesBailHook<[RcptToContext], SmtpVerdict | undefined>(["context"], "onRcptTo"),
    /**
     * Fires once the header section of a DATA message is read (BDAT messages are not inspected);
     * nothing of the message has gone to the backend yet. A reject or defer answers the end of
     * data after the rest is read and discarded (the backend session is closed).
     */
    onData: new AsyncSeriesBailHook<[DataContext], SmtpVerdict | undefined>(["context"], "onData"),
  };
}

export type SmtpHooks = Readonly<ReturnType<typeof createSmtpHooks>>;

/**
 * The SMTP hooks of a proxy, created on first use with core's `defineHooks`: a tap that throws
 * becomes a `PluginError` naming hook and plugin (as for core's own hooks; the session then ends
 * with 421), and a hook without taps reports `isUsed()` false.
 */
export function smtpHooksOf(store: WeakMap<Proxy, SmtpHooks>, proxy: Proxy): SmtpHooks {
  let hooks = store.get(proxy);
  if (hooks === undefined) {
    hooks = defineHooks(createSmtpHooks());
    store.set(proxy, hooks);
  }
  return hooks;
}

/** true when a hook has taps (the interceptor above does not count). */
export function isTapped(hook: { taps: readonly unknown[] }): boolean {
  return hook.taps.length > 0;
}
