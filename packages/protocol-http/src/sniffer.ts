/**
 * Recognises an HTTP/1.x request from its first bytes, so one port can serve several
 * protocols: a method token, a space, and a request-target start ("/", "*", or "http").
 */
export type SniffResult = "http" | "not-http" | "need-more";

const METHOD_CHARS = /^[A-Z]{3,12}$/;
const MAX_METHOD = 12;

export const HttpSniffer = {
  name: "http",
  /** Looks at the first bytes of a connection. */
  sniff(buf: Buffer): SniffResult {
    // leading empty lines are allowed before a request line
    let i = 0;
    while (i < buf.length && (buf[i] === 13 || buf[i] === 10)) i++;
    const sp = buf.indexOf(32, i);
    if (sp === -1) {
      const n = buf.length - i;
      if (n > MAX_METHOD) return "not-http";
      for (let k = i; k < buf.length; k++) if (buf[k]! < 65 || buf[k]! > 90) return "not-http";
      return "need-more";
    }
    const method = buf.toString("latin1", i, sp);
    if (!METHOD_CHARS.test(method)) return "not-http";
    if (sp + 1 >= buf.length) return "need-more";
    const c = buf[sp + 1];
    if (c === 47 /* / */ || c === 42 /* * */) return "http";
    if (c === 104 /* h */ || c === 72) {
      const rest = buf.toString("latin1", sp + 1, Math.min(buf.length, sp + 8)).toLowerCase();
      if ("http://".startsWith(rest) || "https:/".startsWith(rest) || rest.startsWith("http://") || rest.startsWith("https:/")) {
        return rest.length < 7 ? "need-more" : "http";
      }
    }
    return "not-http";
  },
} as const;
