/**
 * The upstream handshake of one backend session, before any client command is relayed: the
 * backend's greeting (anything but 220, a 421 included, is a connect failure), EHLO (HELO if
 * refused), STARTTLS when the route asks for it, then the client's identity: XCLIENT (which
 * resets the session, so EHLO again) or, for later, the XFORWARD attributes to send before each
 * MAIL. Values are xtext-encoded (RFC 3461 §4).
 */
import type { Logger } from "@switchyard/core";
import type { BackendLink } from "./backend.js";
import { parseCapabilities } from "./capabilities.js";
import { xtext } from "./command.js";
import { backendStartTlsOf, type ResolvedSmtpOptions } from "./options.js";

/** Who the client is, as the backend is told. */
export interface ClientIdentity {
  readonly ip: string;
  readonly port: number;
  /** the EHLO/HELO name (the proxy's own name is sent when there is none yet) */
  readonly helo: string | undefined;
  readonly esmtp: boolean;
}

export interface HandshakeContext {
  readonly options: ResolvedSmtpOptions;
  /** deadline of the backend TLS handshake */
  readonly tlsTimeout: number;
  readonly logger: Logger;
  /** connection id, for log lines */
  readonly id: string;
}

/** The backend could not be used: the client gets 421 4.4.1. */
export class BackendHandshakeError extends Error {
  override name = "BackendHandshakeError";
}

export async function introduce(b: BackendLink, client: ClientIdentity, ctx: HandshakeContext): Promise<void> {
  const o = ctx.options;
  const greeting = await b.reply(o.replyTimeout);
  if (greeting.code !== 220) throw new BackendHandshakeError(`backend greeting ${greeting.code} ${greeting.lines[0] ?? ""}`);
  await ehlo(b, client, o);
  await startTls(b, client, ctx);
  const xclient = b.caps.get("XCLIENT");
  const xforward = b.caps.get("XFORWARD");
  if (xclient !== undefined && (o.forwardClient === "auto" || o.forwardClient === "xclient")) {
    const r = await b.command(`XCLIENT ${forwardAttributes(xclient.toUpperCase().split(/\s+/), client).join(" ")}`, o.replyTimeout);
    // XCLIENT resets the session: the backend greeted again and wants a new EHLO
    if (r.code === 220) await ehlo(b, client, o);
    else if (r.code >= 400) ctx.logger.warn("backend refused XCLIENT", { id: ctx.id, code: r.code });
  } else if (xforward !== undefined && (o.forwardClient === "auto" || o.forwardClient === "xforward")) {
    b.xforward = xforward.toUpperCase().split(/\s+/);
  }
}

/** The XCLIENT / XFORWARD attributes the backend listed, xtext-encoded, in a fixed order. */
export function forwardAttributes(supported: readonly string[], client: ClientIdentity): string[] {
  const values: Record<string, string> = {
    ADDR: client.ip.includes(":") ? `IPV6:${client.ip}` : client.ip,
    PORT: String(client.port),
    NAME: "[UNAVAILABLE]",
    HELO: client.helo ?? "[UNAVAILABLE]",
    PROTO: client.esmtp ? "ESMTP" : "SMTP",
  };
  const out: string[] = [];
  for (const [k, v] of Object.entries(values)) if (supported.includes(k)) out.push(`${k}=${xtext(v)}`);
  return out;
}

async function ehlo(b: BackendLink, client: ClientIdentity, o: ResolvedSmtpOptions): Promise<void> {
  const name = client.helo ?? o.hostname;
  const r = await b.command(`EHLO ${name}`, o.replyTimeout);
  if (r.code === 250) {
    b.caps = parseCapabilities(r.lines);
    return;
  }
  const h = await b.command(`HELO ${name}`, o.replyTimeout);
  if (h.code !== 250) throw new BackendHandshakeError(`backend refused EHLO and HELO (${r.code}, ${h.code})`);
  b.caps = new Map();
}

/** STARTTLS toward the backend when the route asks for it (route option `backendStartTls`). */
async function startTls(b: BackendLink, client: ClientIdentity, ctx: HandshakeContext): Promise<void> {
  const st = backendStartTlsOf(b.route.options);
  if (st === undefined) return;
  const required = st.required !== false;
  const refuse = (why: string): void => {
    if (required) throw new BackendHandshakeError(`backend STARTTLS: ${why}`);
    ctx.logger.info("smtp backend STARTTLS skipped", { id: ctx.id, why });
  };
  if (!b.caps.has("STARTTLS")) return refuse("not offered");
  const r = await b.command("STARTTLS", ctx.options.replyTimeout);
  if (r.code !== 220) return refuse(`answered ${r.code}`);
  try {
    await b.startTls(ctx.tlsTimeout);
  } catch (err) {
    // after a failed handshake the session cannot go on in plaintext either
    throw new BackendHandshakeError(`backend TLS handshake: ${(err as Error).message}`, { cause: err });
  }
  // RFC 3207 §4.2: the backend forgot everything; it hears EHLO again
  await ehlo(b, client, ctx.options);
}
