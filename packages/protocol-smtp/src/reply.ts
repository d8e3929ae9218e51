/**
 * SMTP replies (RFC 5321 §4.2, enhanced status codes RFC 2034/3463): building the proxy's own,
 * and parsing the backend's multi-line replies (`250-…` lines then `250 …`) from a byte stream
 * split anywhere. Pure.
 */

/** One complete reply. `lines` hold the text after "ddd-" / "ddd " of each line. */
export interface SmtpReply {
  readonly code: number;
  readonly lines: readonly string[];
}

/** Reply line length the parser accepts from a backend (RFC 5321 says 512; real servers vary). */
export const MAX_REPLY_LINE = 2048;
/** Lines in one reply the parser accepts (an EHLO answer has a few dozen at most). */
export const MAX_REPLY_LINES = 200;

/**
 * Formats a reply: `code`, optional enhanced status (prefixed to every line, RFC 2034 §3), and
 * one or more text lines. CR and LF inside the text are replaced so a reply is never split or
 * injected into.
 */
export function formatReply(code: number, enhanced: string | undefined, text: string | readonly string[]): string {
  const lines = typeof text === "string" ? [text] : text.length === 0 ? [""] : text;
  let out = "";
  for (let i = 0; i < lines.length; i++) {
    const sep = i === lines.length - 1 ? " " : "-";
    const body = (enhanced ? `${enhanced} ` : "") + lines[i]!.replace(/[\r\n]+/g, " ");
    out += `${code}${sep}${body}\r\n`;
  }
  return out;
}

/** The reply as it goes on the wire (lines exactly as received). */
export function serializeReply(reply: SmtpReply): string {
  let out = "";
  for (let i = 0; i < reply.lines.length; i++) {
    out += `${reply.code}${i === reply.lines.length - 1 ? " " : "-"}${reply.lines[i]}\r\n`;
  }
  return out;
}

/** The enhanced status code at the start of a reply's first line ("2.1.0"), if any. */
export function enhancedStatusOf(reply: SmtpReply): string | undefined {
  return /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/.exec(reply.lines[0] ?? "")?.[1];
}

/** A backend sent bytes that are not an SMTP reply. */
export class ReplyParseError extends Error {
  override name = "ReplyParseError";
}

/**
 * Parses replies from a byte stream. `push` returns the replies completed by a chunk; partial
 * lines and partial multi-line replies are kept (bounded by MAX_REPLY_LINE / MAX_REPLY_LINES).
 * Throws ReplyParseError on anything that is not a reply.
 */
export class ReplyParser {
  #partial = "";
  #code = 0;
  #lines: string[] = [];

  push(chunk: Buffer): SmtpReply[] {
    const out: SmtpReply[] = [];
    let text = this.#partial + chunk.toString("latin1");
    let start = 0;
    for (;;) {
      const lf = text.indexOf("\n", start);
      if (lf < 0) break;
      const end = lf > start && text.charCodeAt(lf - 1) === 13 ? lf - 1 : lf;
      const line = text.slice(start, end);
      start = lf + 1;
      const reply = this.#line(line);
      if (reply) out.push(reply);
    }
    text = text.slice(start);
    if (text.length > MAX_REPLY_LINE) throw new ReplyParseError(`reply line longer than ${MAX_REPLY_LINE} octets`);
    this.#partial = text;
    return out;
  }

  /** true when no reply is partly read */
  get idle(): boolean {
    return this.#partial === "" && this.#lines.length === 0;
  }

  #line(line: string): SmtpReply | undefined {
    if (line.length > MAX_REPLY_LINE) throw new ReplyParseError(`reply line longer than ${MAX_REPLY_LINE} octets`);
    const m = /^([2-5][0-9][0-9])([ -]|$)/.exec(line);
    if (!m) throw new ReplyParseError(`not an SMTP reply line: ${JSON.stringify(line.slice(0, 80))}`);
    const code = Number(m[1]);
    if (this.#lines.length > 0 && code !== this.#code) throw new ReplyParseError(`reply code changed within a multi-line reply (${this.#code} then ${code})`);
    this.#code = code;
    this.#lines.push(line.slice(4));
    if (this.#lines.length > MAX_REPLY_LINES) throw new ReplyParseError(`reply longer than ${MAX_REPLY_LINES} lines`);
    if (m[2] === "-") return undefined;
    const reply = { code, lines: this.#lines };
    this.#lines = [];
    return reply;
  }
}
