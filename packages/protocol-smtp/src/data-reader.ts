/**
 * The DATA phase of the client side (RFC 5321 §4.1.1.4, §4.5.2): finds `<CRLF>.<CRLF>` across
 * chunk boundaries, leaves dot-stuffing untouched, and never buffers the message (at most two
 * bytes are held back between chunks). Pure: chunks in, bytes to forward out.
 *
 * SMTP smuggling (CVE-2023-51764 and relatives): only `<CRLF>.<CRLF>` ends the message; a bare
 * LF or a bare CR anywhere in it is a violation. In "reject" mode (the default, as Postfix's
 * `smtpd_forbid_bare_newline = yes`) nothing from the violation on is forwarded — not even a
 * pending `<CR>` or `.` that could complete a terminator at a lenient backend — and the reader
 * then skips to the real end of data so the session can answer in order. In "normalize" mode a
 * bare LF or CR becomes CRLF, and a line that thereby starts with "." gets one more "." so the
 * backend never sees an end of data the client did not send.
 */

export type DataViolation = "bare-lf" | "bare-cr";

export type BareNewlinePolicy = "reject" | "normalize";

export interface DataStep {
  /** bytes to forward to the backend, in order (the terminator included once done) */
  readonly out: Buffer[];
  /** the end of data was read */
  readonly done: boolean;
  /** input after the terminator (pipelined commands), when done */
  readonly rest: Buffer | undefined;
}

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;

const S_TEXT = 0;
/** after a CR (pending: is it followed by LF?) */
const S_CR = 1;
/** at the start of a line that followed a real CRLF */
const S_BOL = 2;
/** CRLF then "." (pending) */
const S_DOT = 3;
/** CRLF "." CR (pending) */
const S_DOTCR = 4;
/** at the start of a line made by normalising a bare newline (normalize mode only) */
const S_NBOL = 5;

const CRLF_BUF = Buffer.from("\r\n");
const DOT_CRLF_BUF = Buffer.from(".\r\n");
const DOT_BUF = Buffer.from(".");
const EMPTY: Buffer[] = [];

export class DataReader {
  readonly #policy: BareNewlinePolicy;
  #state = S_BOL;
  /** pending bytes from the end of the previous chunk, not yet forwarded */
  #held: Buffer | undefined;
  #violation: DataViolation | undefined;
  /** forwarding stopped (violation or `abort`): skip to the end of data */
  #discarding = false;
  #done = false;
  /** bytes of the DATA stream read so far (terminator included), for the size limit */
  #size = 0;

  constructor(policy: BareNewlinePolicy = "reject") {
    this.#policy = policy;
  }

  /** the first bare newline seen (also set in normalize mode, where it was rewritten) */
  get violation(): DataViolation | undefined {
    return this.#violation;
  }

  /** true once forwarding stopped (violation in reject mode, or `abort`) */
  get discarding(): boolean {
    return this.#discarding;
  }

  get done(): boolean {
    return this.#done;
  }

  /** bytes of the DATA stream read so far, the terminator included (for the size limit) */
  get size(): number {
    return this.#size;
  }

  /** Stops forwarding (size limit, a hook's verdict); the reader keeps looking for the end. */
  abort(): void {
    this.#discarding = true;
    this.#held = undefined;
  }

  push(input: Buffer): DataStep {
    if (this.#done) return { out: EMPTY, done: true, rest: input };
    this.#size += input.length;
    let chunk = input;
    let state = this.#state;
    if (this.#held !== undefined) {
      chunk = Buffer.concat([this.#held, input]);
      state = this.#held[0] === DOT ? S_BOL : S_TEXT;
      this.#held = undefined;
    }
    const out: Buffer[] = [];
    const n = chunk.length;
    let seg = 0; // start of the not yet emitted slice
    let pending = -1; // where the pending bytes start (S_CR, S_DOT, S_DOTCR)
    let nextCr = -2;
    let nextLf = -2;
    let i = 0;
    const normalize = this.#policy === "normalize";
    while (i < n) {
      if (state === S_TEXT) {
        // jump to the next CR or LF (positions cached so a long run costs one scan)
        if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
        if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
        const j = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
        if (j === -1) {
          i = n;
          break;
        }
        i = j;
      }
      const b = chunk[i]!;
      if (this.#discarding) {
        state = discardStep(state, b);
        i++;
        if (state === -1) return this.#finish(out, chunk, i);
        continue;
      }
      switch (state) {
        case S_TEXT:
        case S_BOL:
        case S_NBOL:
          if (b === CR) {
            state = S_CR;
            pending = i;
          } else if (b === LF) {
            // bare LF
            if (!normalize) {
              this.#violate("bare-lf", out, chunk, seg, i);
              state = S_TEXT;
              i++;
              continue;
            }
            this.#violation ??= "bare-lf";
            pushSlice(out, chunk, seg, i);
            out.push(CRLF_BUF);
            seg = i + 1;
            state = S_NBOL;
          } else if (b === DOT && state === S_BOL) {
            state = S_DOT;
            pending = i;
          } else if (b === DOT && state === S_NBOL) {
            // a line start we made: stuff its dot, as the client did not
            pushSlice(out, chunk, seg, i);
            out.push(DOT_BUF);
            seg = i;
            state = S_TEXT;
          } else state = S_TEXT;
          break;
        case S_CR:
          if (b === LF) {
            state = S_BOL;
            pending = -1;
            break;
          }
          // bare CR (the byte after it is looked at again at a line start)
          if (!normalize) {
            this.#violate("bare-cr", out, chunk, seg, pending);
            state = S_TEXT;
            continue;
          }
          this.#violation ??= "bare-cr";
          pushSlice(out, chunk, seg, pending);
          out.push(CRLF_BUF);
          seg = i;
          pending = -1;
          state = S_NBOL;
          continue;
        case S_DOT:
          if (b === CR) state = S_DOTCR;
          else if (b === LF) {
            if (!normalize) {
              this.#violate("bare-lf", out, chunk, seg, pending);
              state = S_TEXT;
              i++;
              continue;
            }
            // "." then a bare LF: the dot stays, one more makes it content
            this.#violation ??= "bare-lf";
            pushSlice(out, chunk, seg, pending + 1);
            out.push(DOT_CRLF_BUF);
            seg = i + 1;
            pending = -1;
            state = S_NBOL;
          } else {
            state = S_TEXT;
            pending = -1;
          }
          break;
        case S_DOTCR:
          if (b === LF) {
            // <CRLF>.<CRLF>: the end
            i++;
            pushSlice(out, chunk, seg, i);
            return this.#finish(out, chunk, i);
          }
          if (!normalize) {
            this.#violate("bare-cr", out, chunk, seg, pending);
            state = S_TEXT;
            continue;
          }
          this.#violation ??= "bare-cr";
          pushSlice(out, chunk, seg, pending + 1);
          out.push(DOT_CRLF_BUF);
          seg = i;
          pending = -1;
          state = S_NBOL;
          continue;
      }
      i++;
    }
    this.#state = state;
    if (this.#discarding) return { out, done: false, rest: undefined };
    if (state === S_CR || state === S_DOT || state === S_DOTCR) {
      // hold back what could still turn out to be a bare CR or a terminator
      pushSlice(out, chunk, seg, pending);
      this.#held = Buffer.from(chunk.subarray(pending));
    } else pushSlice(out, chunk, seg, n);
    return { out, done: false, rest: undefined };
  }

  #violate(kind: DataViolation, out: Buffer[], chunk: Buffer, seg: number, end: number): void {
    this.#violation ??= kind;
    pushSlice(out, chunk, seg, end);
    this.#discarding = true;
  }

  /** The end was read at `end`: what is left is `rest`. */
  #finish(out: Buffer[], chunk: Buffer, end: number): DataStep {
    this.#done = true;
    this.#state = S_BOL;
    const rest = end < chunk.length ? chunk.subarray(end) : undefined;
    if (rest !== undefined) this.#size -= rest.length;
    return { out, done: true, rest };
  }
}

/**
 * One byte while discarding: the same states, but a bare newline is not a line start (only
 * `<CRLF>.<CRLF>` ends the message). Returns -1 at the end.
 */
function discardStep(state: number, b: number): number {
  switch (state) {
    case S_CR:
      if (b === LF) return S_BOL;
      return b === CR ? S_CR : S_TEXT;
    case S_BOL:
      if (b === DOT) return S_DOT;
      return b === CR ? S_CR : S_TEXT;
    case S_DOT:
      return b === CR ? S_DOTCR : S_TEXT;
    case S_DOTCR:
      if (b === LF) return -1;
      return b === CR ? S_CR : S_TEXT;
    default:
      return b === CR ? S_CR : S_TEXT;
  }
}

function pushSlice(out: Buffer[], chunk: Buffer, from: number, to: number): void {
  if (to > from) out.push(chunk.subarray(from, to));
}
