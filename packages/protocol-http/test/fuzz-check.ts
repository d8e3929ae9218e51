/**
 * A small strict HTTP/1.1 response parser for fuzz.test.ts: what a careful client would accept
 * from the proxy. Anything it cannot frame is reported as an error (garbage, bleed, desync).
 */

export interface ParsedResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
  /** the body's framing was satisfied (false: the connection ended inside it) */
  complete: boolean;
  framing: "none" | "length" | "chunked" | "close";
  /** offset of the status line in the received bytes */
  offset: number;
  /** a proxy error response to HEAD that carried its body (followed by a close) */
  headBody?: boolean;
}

export interface ParseResult {
  responses: ParsedResponse[];
  errors: string[];
  /** bytes after a 101 (the tunnel) */
  tunnel: Buffer | undefined;
  /** every byte received is inside some response (or the tunnel); nothing is half-received */
  settled: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const STATUS_LINE = /^HTTP\/1\.1 (\d{3}) ([\t\x20-\x7e\x80-\xff]*)$/;

export function header(h: Array<[string, string]>, name: string): string | undefined {
  const n = name.toLowerCase();
  return h.find(([k]) => k.toLowerCase() === n)?.[1];
}
function headerAll(h: Array<[string, string]>, name: string): string[] {
  const n = name.toLowerCase();
  return h.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

/**
 * Parses everything the client received. `methodOf(i)` is the method of the request the i-th
 * final response answers (undefined when unknown), used for HEAD; `closed` tells whether the
 * connection has ended (close-delimited bodies and truncation).
 */
export function parseResponses(buf: Buffer, closed: boolean, methodOf: (finalIndex: number, r: ParsedResponse) => string | undefined): ParseResult {
  const responses: ParsedResponse[] = [];
  const errors: string[] = [];
  let pos = 0;
  let finals = 0;
  const out = (settled: boolean, tunnel?: Buffer): ParseResult => ({ responses, errors, tunnel, settled });
  while (pos < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", pos, "latin1");
    if (headEnd < 0) {
      // the proxy writes a head in one write: a partial head is only legitimate while still arriving
      if (closed) errors.push(`bytes that are not a response head at ${pos}: ${JSON.stringify(buf.subarray(pos, pos + 200).toString("latin1"))}`);
      return out(false);
    }
    const lines = buf.subarray(pos, headEnd).toString("latin1").split("\r\n");
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) {
      errors.push(`bad status line at ${pos}: ${JSON.stringify(lines[0]!.slice(0, 200))}`);
      return out(false);
    }
    const status = +m[1]!;
    const headers: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      const name = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      if (i < 0 || !TOKEN.test(name) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
        errors.push(`bad header line in response at ${pos}: ${JSON.stringify(line.slice(0, 200))}`);
        return out(false);
      }
      headers.push([name, value]);
    }
    const r: ParsedResponse = { status, headers, body: Buffer.alloc(0), complete: true, framing: "none", offset: pos };
    responses.push(r);
    pos = headEnd + 4;
    const te = headerAll(headers, "transfer-encoding");
    const cl = headerAll(headers, "content-length");
    const conn = (header(headers, "connection") ?? "").toLowerCase();
    if (status === 101) return out(true, buf.subarray(pos));
    if (status < 200) {
      if (te.length > 0 || cl.length > 0) errors.push(`${status} with framing headers`);
      continue;
    }
    let method = methodOf(finals, r);
    const rid = header(headers, "x-request-id");
    let errorBody = false;
    if (rid !== undefined && header(headers, "x-up") === undefined && cl.length === 1) {
      // a proxy error: its body (when sent) ends with the request id; this tells whether one was
      // sent, which matters when we cannot tell which request it answers (after a mutation)
      const n = Number(cl[0]);
      const avail = buf.subarray(pos, pos + n).toString("latin1");
      const prefix = `${status} `;
      errorBody =
        n > 0 &&
        (avail.length === n ? avail.endsWith(`request id: ${rid}\n`) : avail.length === 0 ? !closed : avail.length < prefix.length ? prefix.startsWith(avail) : avail.startsWith(prefix));
      if (method === undefined && !errorBody) method = "HEAD";
    }
    finals++;
    if (te.length > 0 && cl.length > 0) errors.push(`response ${status} with both Content-Length and Transfer-Encoding`);
    if (cl.length > 1) errors.push(`response ${status} with ${cl.length} Content-Length headers`);
    if (te.length > 1 || (te.length === 1 && te[0]!.toLowerCase() !== "chunked")) errors.push(`response ${status} with Transfer-Encoding ${te.join(",")}`);
    if (cl.length === 1 && !/^\d+$/.test(cl[0]!)) errors.push(`response ${status} with Content-Length ${cl[0]}`);
    if (status === 204 && cl.length > 0) errors.push("204 with Content-Length");
    if ((status === 204 || status === 304) && te.length > 0) errors.push(`${status} with Transfer-Encoding`);
    if (method === "HEAD" && errorBody && !/\bclose\b/.test(conn)) {
      errors.push(`proxy error ${status} to a HEAD request sent its body on a keep-alive connection (the client takes it for the next response)`);
      return out(false);
    }
    if (method === "HEAD" && errorBody) {
      // the proxy's own error answer to a HEAD request, with a body and a close: RFC 9110 says
      // no body, but nothing can follow on this connection, so no client is desynchronised
      // (noted, not failed; a keep-alive one would fall through and show up as garbage)
      r.framing = "length";
      r.headBody = true;
      r.body = buf.subarray(pos, Math.min(buf.length, pos + Number(cl[0])));
      pos = Math.min(buf.length, pos + Number(cl[0]));
    } else if (method === "HEAD" || status === 204 || status === 304) {
      r.framing = "none";
    } else if (te.length > 0) {
      r.framing = "chunked";
      const parts: Buffer[] = [];
      for (;;) {
        const eol = buf.indexOf("\r\n", pos, "latin1");
        if (eol < 0) {
          r.complete = false;
          break;
        }
        const sizeLine = buf.subarray(pos, eol).toString("latin1");
        if (!/^[0-9a-fA-F]{1,8}$/.test(sizeLine)) {
          errors.push(`bad chunk size line ${JSON.stringify(sizeLine.slice(0, 100))} at ${pos}`);
          return out(false);
        }
        const size = parseInt(sizeLine, 16);
        if (size === 0) {
          // trailers, then an empty line
          let tpos = eol + 2;
          for (;;) {
            const tl = buf.indexOf("\r\n", tpos, "latin1");
            if (tl < 0) {
              r.complete = false;
              pos = buf.length;
              break;
            }
            const line = buf.subarray(tpos, tl).toString("latin1");
            tpos = tl + 2;
            if (line === "") {
              pos = tpos;
              break;
            }
            if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(line)) {
              errors.push(`bad trailer ${JSON.stringify(line.slice(0, 100))}`);
              return out(false);
            }
          }
          break;
        }
        if (eol + 2 + size + 2 > buf.length) {
          parts.push(buf.subarray(eol + 2, Math.min(buf.length, eol + 2 + size)));
          r.complete = false;
          pos = buf.length;
          break;
        }
        parts.push(buf.subarray(eol + 2, eol + 2 + size));
        if (buf.subarray(eol + 2 + size, eol + 4 + size).toString("latin1") !== "\r\n") {
          errors.push(`chunk data not followed by CRLF at ${eol + 2 + size}`);
          return out(false);
        }
        pos = eol + 4 + size;
      }
      r.body = Buffer.concat(parts);
      if (!r.complete) return out(false);
    } else if (cl.length === 1) {
      r.framing = "length";
      const n = Number(cl[0]);
      r.body = buf.subarray(pos, Math.min(buf.length, pos + n));
      if (pos + n > buf.length) {
        r.complete = false;
        return out(false);
      }
      pos += n;
    } else {
      r.framing = "close";
      r.body = buf.subarray(pos);
      pos = buf.length;
      r.complete = closed;
      return out(closed);
    }
    if (conn.split(",").some((t) => t.trim() === "close") && pos < buf.length) {
      errors.push(`${buf.length - pos} bytes after a Connection: close response: ${JSON.stringify(buf.subarray(pos, pos + 200).toString("latin1"))}`);
      return out(false);
    }
  }
  return out(true);
}
