/**
 * Client commands (RFC 5321 §4.1): the verb and its argument, the reverse- and forward-path of
 * MAIL and RCPT with their parameters, and xtext (RFC 3461 §4) for XCLIENT / XFORWARD values.
 * Pure.
 */

export interface Command {
  /** upper-cased verb ("MAIL", "EHLO") */
  readonly verb: string;
  /** everything after the verb and one space, as sent */
  readonly args: string;
}

export function parseCommand(text: string): Command {
  const sp = text.indexOf(" ");
  if (sp < 0) return { verb: text.toUpperCase(), args: "" };
  return { verb: text.slice(0, sp).toUpperCase(), args: text.slice(sp + 1) };
}

/** `FROM:<a@b> SIZE=10` → { address: "a@b", params: "SIZE=10" }. */
export interface PathArgument {
  /** the mailbox between the angle brackets ("" for the null reverse-path `<>`) */
  readonly address: string;
  /** ESMTP parameters after the path, as sent ("" when none) */
  readonly params: string;
}

/**
 * Parses the argument of MAIL (`keyword` "FROM") or RCPT ("TO"). A space after the colon is
 * tolerated (many clients send it); the path must be in angle brackets. undefined: syntax error.
 */
export function parsePath(args: string, keyword: "FROM" | "TO"): PathArgument | undefined {
  const head = args.slice(0, keyword.length + 1).toUpperCase();
  if (head !== `${keyword}:`) return undefined;
  const rest = args.slice(keyword.length + 1).replace(/^ /, "");
  if (!rest.startsWith("<")) return undefined;
  const close = rest.indexOf(">");
  if (close < 0) return undefined;
  const address = rest.slice(1, close);
  if (/[\s<>]/.test(address)) return undefined;
  // a source route ("@a,@b:user@c") is accepted and ignored (RFC 5321 §4.1.2, C.)
  const after = rest.slice(close + 1);
  if (after !== "" && !after.startsWith(" ")) return undefined;
  return { address, params: after.trim() };
}

/** Builds the argument back: `FROM:<a@b> SIZE=10`. */
export function formatPath(keyword: "FROM" | "TO", path: PathArgument): string {
  return `${keyword}:<${path.address}>${path.params ? ` ${path.params}` : ""}`;
}

/** The domain of a mailbox, lower-cased and read as UTF-8 (SMTPUTF8); "" when there is none. */
export function domainOf(address: string): string {
  const mailbox = address.includes(":") ? address.slice(address.lastIndexOf(":") + 1) : address;
  const at = mailbox.lastIndexOf("@");
  if (at < 0) return "";
  return Buffer.from(mailbox.slice(at + 1), "latin1").toString("utf8").toLowerCase();
}

/** The value of an ESMTP parameter (`SIZE=123` → "123"), case-insensitive keyword. */
export function paramValue(params: string, keyword: string): string | undefined {
  const k = keyword.toUpperCase();
  for (const p of params.split(" ")) {
    const eq = p.indexOf("=");
    const name = (eq < 0 ? p : p.slice(0, eq)).toUpperCase();
    if (name === k) return eq < 0 ? "" : p.slice(eq + 1);
  }
  return undefined;
}

/**
 * The EHLO/HELO argument, or undefined when it is not a plausible domain or address literal:
 * printable ASCII (UTF-8 allowed), no spaces, at most 255 octets.
 */
export function parseHeloDomain(args: string): string | undefined {
  const domain = args.trim();
  if (domain === "" || domain.length > 255 || /[\s\x00-\x1f\x7f]/.test(domain)) return undefined;
  return domain;
}

/** RFC 3461 xtext: "+" , "=" and octets outside 33–126 become "+HH". */
export function xtext(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    out += byte < 33 || byte > 126 || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(byte);
  }
  return out;
}

/** Decodes xtext ("+2B" → "+"). */
export function unxtext(value: string): string {
  return Buffer.from(
    value.replace(/\+([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    "latin1",
  ).toString("utf8");
}
