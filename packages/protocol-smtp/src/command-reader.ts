/**
 * Command-line framing of the client side (RFC 5321 §2.3.8, §4.5.3.1): lines end with CRLF, a
 * command line is at most 512 octets with its CRLF (the caller picks the limit per line: AUTH
 * continuation lines may be longer). Pure: bytes in, lines out, no socket.
 *
 * Buffering is bounded: an incomplete line longer than the limit is not kept; its bytes are
 * dropped up to the next LF and the reader reports `too-long` once, where that line ends, so
 * the session answers 500 in order and the session goes on.
 */

/** One framed line. `text` has no line ending. */
export type LineEvent =
  | { readonly kind: "line"; readonly text: string }
  /** the line ended with LF alone (no CR): refused, Postfix's smtpd_forbid_bare_newline */
  | { readonly kind: "bare-lf" }
  /** the line held a CR not followed by LF, or a NUL */
  | { readonly kind: "bad-char" }
  /** the line was longer than the limit; its bytes were dropped */
  | { readonly kind: "too-long" };

const LF = 0x0a;
const CR = 0x0d;

export class CommandLineReader {
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** dropping an over-long line until its LF */
  #discarding = false;

  /** bytes held (never more than the largest limit asked for plus one chunk) */
  get buffered(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /** Puts bytes back in front (what a DATA or BDAT reader did not consume). */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.unshift(chunk);
    this.#bytes += chunk.length;
  }

  /** Hands over every buffered byte (the reader is empty afterwards). */
  take(): Buffer {
    const out = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    this.clear();
    return out;
  }

  /** Drops everything buffered (plaintext pipelined after STARTTLS). */
  clear(): void {
    this.#chunks = [];
    this.#bytes = 0;
    this.#discarding = false;
  }

  /**
   * The next complete line, or undefined when more bytes are needed. `limit` counts the CRLF
   * (512 for commands).
   */
  readLine(limit: number): LineEvent | undefined {
    for (;;) {
      const at = this.#indexOfLf();
      if (at < 0) {
        if (this.#bytes > limit) {
          // keep nothing of a line that can no longer be valid
          this.#chunks = [];
          this.#bytes = 0;
          this.#discarding = true;
        }
        return undefined;
      }
      const line = this.#consume(at + 1);
      if (this.#discarding) {
        this.#discarding = false;
        return { kind: "too-long" };
      }
      if (line.length > limit) return { kind: "too-long" };
      const crlf = line.length >= 2 && line[line.length - 2] === CR;
      if (!crlf) return { kind: "bare-lf" };
      const body = line.subarray(0, line.length - 2);
      if (body.includes(CR) || body.includes(0)) return { kind: "bad-char" };
      return { kind: "line", text: body.toString("latin1") };
    }
  }

  #indexOfLf(): number {
    let offset = 0;
    for (const c of this.#chunks) {
      const i = c.indexOf(LF);
      if (i >= 0) return offset + i;
      offset += c.length;
    }
    return -1;
  }

  /** Removes and returns the first `n` buffered bytes. */
  #consume(n: number): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      const parts: Buffer[] = [];
      let need = n;
      while (need > 0) {
        const c = this.#chunks[0]!;
        if (c.length <= need) {
          parts.push(c);
          this.#chunks.shift();
          need -= c.length;
        } else {
          parts.push(c.subarray(0, need));
          this.#chunks[0] = c.subarray(need);
          need = 0;
        }
      }
      out = Buffer.concat(parts, n);
    }
    this.#bytes -= n;
    return out;
  }
}
