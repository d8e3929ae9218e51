/**
 * Seeded fuzz of the wire modules against small reference definitions. Each case comes from one
 * seed (FUZZ_SEED, default 0x5e7d0000; FUZZ_CASES, default 400); a failure prints its seed.
 * - command lines: random lines (valid, over-long, bare LF, CR/NUL inside) split at random
 *   points give the events the line-by-line definition gives, with bounded buffering;
 * - replies: random multi-line replies split at random points parse back exactly;
 * - DATA: random messages built from risky pieces (dots at line starts, bare CR/LF, terminator
 *   look-alikes) split at random points: reject mode forwards the message up to the first
 *   `<CRLF>.<CRLF>` exactly when it has no bare newline, otherwise forwards a clean prefix that
 *   ends before the first violation; normalize mode forwards a stream with no bare newline whose
 *   only end of data is its last five bytes; both leave exactly the bytes after the real end.
 */
import { expect } from "chai";
import { seededRandom } from "@switchyard/test-utils";
import { CommandLineReader, DataReader, ReplyParser, type LineEvent } from "@switchyard/protocol-smtp";

const BASE = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5e7d0000;
const CASES = process.env.FUZZ_CASES !== undefined ? Number(process.env.FUZZ_CASES) : 400;

type Rand = () => number;
const int = (rnd: Rand, n: number) => Math.floor(rnd() * n);
const pick = <T>(rnd: Rand, xs: readonly T[]): T => xs[int(rnd, xs.length)]!;

function split(rnd: Rand, s: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < s.length) {
    const n = 1 + int(rnd, rnd() < 0.3 ? 4 : 300);
    out.push(s.subarray(i, i + n));
    i += n;
  }
  return out;
}

function eachSeed(fn: (rnd: Rand, seed: number) => void): void {
  for (let i = 0; i < CASES; i++) {
    const seed = (BASE + i) >>> 0;
    try {
      fn(seededRandom(seed), seed);
    } catch (err) {
      (err as Error).message = `seed ${seed}: ${(err as Error).message}`;
      throw err;
    }
  }
}

function expectedLines(stream: string, limit: number): LineEvent[] {
  const out: LineEvent[] = [];
  let start = 0;
  for (;;) {
    const lf = stream.indexOf("\n", start);
    if (lf < 0) break;
    const line = stream.slice(start, lf + 1);
    start = lf + 1;
    if (line.length > limit) out.push({ kind: "too-long" });
    else if (!line.endsWith("\r\n")) out.push({ kind: "bare-lf" });
    else if (/[\r\0]/.test(line.slice(0, -2))) out.push({ kind: "bad-char" });
    else out.push({ kind: "line", text: line.slice(0, -2) });
  }
  return out;
}

describe("smtp wire fuzz", () => {
  it("command lines: events match the definition, buffering stays bounded", () => {
    eachSeed((rnd) => {
      const limit = pick(rnd, [16, 64, 512]);
      let stream = "";
      for (let n = int(rnd, 20); n > 0; n--) {
        const len = int(rnd, rnd() < 0.2 ? limit * 3 : limit);
        let body = "";
        for (let k = 0; k < len; k++) body += pick(rnd, ["a", "b", " ", ":", "<", rnd() < 0.02 ? "\r" : "x", rnd() < 0.01 ? "\0" : "y"]);
        stream += body + (rnd() < 0.1 ? "\n" : "\r\n");
      }
      const r = new CommandLineReader();
      const got: LineEvent[] = [];
      let maxChunk = 0;
      for (const c of split(rnd, Buffer.from(stream, "latin1"))) {
        maxChunk = Math.max(maxChunk, c.length);
        r.push(c);
        for (let ev = r.readLine(limit); ev !== undefined; ev = r.readLine(limit)) got.push(ev);
        expect(r.buffered).to.be.at.most(limit + maxChunk);
      }
      expect(got).to.deep.equal(expectedLines(stream, limit));
    });
  });

  it("replies: random multi-line replies split anywhere parse back exactly", () => {
    eachSeed((rnd) => {
      const replies = Array.from({ length: 1 + int(rnd, 5) }, () => ({
        code: pick(rnd, [220, 221, 250, 334, 354, 421, 451, 550, 554]),
        lines: Array.from({ length: 1 + int(rnd, 4) }, () => "t".repeat(int(rnd, 40)) + (rnd() < 0.5 ? " x-y" : "")),
      }));
      const wire = replies.map((r) => r.lines.map((l, i) => `${r.code}${i === r.lines.length - 1 ? " " : "-"}${l}\r\n`).join("")).join("");
      const p = new ReplyParser();
      const got = split(rnd, Buffer.from(wire)).flatMap((c) => p.push(c));
      expect(got).to.deep.equal(replies);
      expect(p.idle).to.equal(true);
    });
  });

  const PIECES = ["a", "xyz", "\r\n", "\r\n", "\r\n.", "..", ".", "\n", "\r", "\r\n.\r", "\n.\n", "\r.\r", "\n.\r\n"];

  function bareNewlineAt(s: string): number {
    for (let i = 0; i < s.length; i++) {
      if (s[i] === "\n" && s[i - 1] !== "\r") return i;
      if (s[i] === "\r" && s[i + 1] !== "\n") return i;
    }
    return -1;
  }

  for (const policy of ["reject", "normalize"] as const) {
    it(`DATA (${policy}): ends only at the first <CRLF>.<CRLF>, never forwards a bare newline`, () => {
      eachSeed((rnd) => {
        let body = "";
        for (let n = int(rnd, 30); n > 0; n--) body += pick(rnd, PIECES);
        const msg = body + "\r\n.\r\nQUIT\r\n";
        const end = ("\r\n" + msg).indexOf("\r\n.\r\n") + 3; // end offset in msg
        const r = new DataReader(policy);
        const out: Buffer[] = [];
        let rest: string | undefined;
        let done = false;
        for (const c of split(rnd, Buffer.from(msg, "latin1"))) {
          if (done) {
            rest += c.toString("latin1");
            continue;
          }
          const step = r.push(c);
          out.push(...step.out);
          if (step.done) {
            done = true;
            rest = step.rest?.toString("latin1") ?? "";
          }
        }
        expect(done).to.equal(true);
        expect(rest).to.equal(msg.slice(end));
        const sent = Buffer.concat(out).toString("latin1");
        const message = msg.slice(0, end);
        const violation = bareNewlineAt(message);
        expect(bareNewlineAt(sent), JSON.stringify(sent)).to.equal(-1);
        if (policy === "reject") {
          if (violation < 0) expect(sent).to.equal(message);
          else {
            expect(r.violation).to.not.equal(undefined);
            expect(message.startsWith(sent)).to.equal(true);
            expect(sent.length).to.be.at.most(violation);
            expect(sent.endsWith("\r") || sent.endsWith("\r\n.") || sent === ".").to.equal(false);
          }
        } else {
          expect(("\r\n" + sent).indexOf("\r\n.\r\n")).to.equal(sent.length - 3);
          if (violation < 0) expect(sent).to.equal(message);
        }
      });
    });
  }
});
