/**
 * EHLO capabilities (RFC 5321 §4.1.1.1): what the backend advertises, filtered to what the proxy
 * honours, plus what the proxy offers itself (STARTTLS, AUTH when it routes by user). Pure.
 */

/** Extensions relayed from the backend when it advertises them (the proxy supports each). */
export const PASSTHROUGH_EXTENSIONS: ReadonlySet<string> = new Set([
  "SIZE",
  "PIPELINING",
  "8BITMIME",
  "SMTPUTF8",
  "CHUNKING",
  "ENHANCEDSTATUSCODES",
  "DSN",
  "AUTH",
]);

/** keyword (upper case) → parameters as sent */
export type Capabilities = ReadonlyMap<string, string>;

/** The keywords of an EHLO reply (every line but the first, which names the server). */
export function parseCapabilities(lines: readonly string[]): Capabilities {
  const caps = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const sp = line.indexOf(" ");
    const keyword = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    // "AUTH=LOGIN" is an old spelling of AUTH; keep the first form seen
    if (keyword.startsWith("AUTH=")) continue;
    if (!caps.has(keyword)) caps.set(keyword, sp < 0 ? "" : line.slice(sp + 1));
  }
  return caps;
}

export interface AdvertiseOptions {
  /** the name in the first line */
  hostname: string;
  /** what the client's EHLO said (echoed in the first line, as servers do) */
  clientName: string;
  /** offer STARTTLS (listener has `tls` and the session is not yet TLS) */
  startTls: boolean;
  /** the proxy's own size limit (0: none) */
  maxMessageSize: number;
  /** AUTH mechanisms the proxy offers itself (authUser routing), or undefined */
  auth: string | undefined;
  /** relay the backend's AUTH line (ehlo routing: the backend authenticates) */
  relayAuth: boolean;
}

/**
 * The EHLO reply lines the client gets: the backend's capabilities that the proxy passes
 * through, SIZE lowered to the proxy's limit, STARTTLS and AUTH as the proxy decides.
 */
export function advertise(backend: Capabilities, o: AdvertiseOptions): string[] {
  const lines = [`${o.hostname} greets ${o.clientName}`];
  for (const [keyword, params] of backend) {
    if (!PASSTHROUGH_EXTENSIONS.has(keyword)) continue;
    if (keyword === "AUTH" && (!o.relayAuth || o.auth !== undefined)) continue;
    if (keyword === "SIZE") {
      lines.push(sizeLine(Number(params) || 0, o.maxMessageSize));
      continue;
    }
    lines.push(params === "" ? keyword : `${keyword} ${params}`);
  }
  if (o.maxMessageSize > 0 && !backend.has("SIZE")) lines.push(`SIZE ${o.maxMessageSize}`);
  if (o.startTls) lines.push("STARTTLS");
  if (o.auth !== undefined) lines.push(`AUTH ${o.auth}`);
  return lines;
}

function sizeLine(backend: number, proxy: number): string {
  const limit = backend > 0 && proxy > 0 ? Math.min(backend, proxy) : Math.max(backend, proxy);
  return limit > 0 ? `SIZE ${limit}` : "SIZE";
}
