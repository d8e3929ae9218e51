/**
 * Seeded fuzz of whole sessions through the proxy. Each case (seed FUZZ_SEED + i; defaults
 * 0x5e7e0000 and 120 cases, 8 at a time) is a client script of random steps — clean
 * transactions, pipelined batches, bad and over-long lines, unknown commands, DATA with smuggling
 * shapes or bare newlines, BDAT chunks whose bytes look like commands, RSET, NOOP — written in
 * random splits, ending with QUIT or an abrupt close. The backend is the raw scripted server
 * with a lenient end of data (as vulnerable servers had), so anything smuggled would show.
 *
 * Invariants: every byte the client gets parses as SMTP replies; a QUIT case ends with 221 and
 * a closed connection; the backend receives exactly the clean messages that were sent, byte for
 * byte, in order, and no command line that only appeared inside message data; after each batch
 * no connection is left.
 */
import { expect } from "chai";
import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { expectNoActiveConnections, forEachConcurrently, seedBatches, seededRandom, sleep, type StartedProxy } from "@switchyard/test-utils";
import { ReplyParser, type SmtpReply } from "@switchyard/protocol-smtp";
import { startSmtpProxy } from "./helpers.js";
import { startRawBackend, type RawBackend } from "./raw-backend.js";

const BASE = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5e7e0000;
const CASES = process.env.FUZZ_CASES !== undefined ? Number(process.env.FUZZ_CASES) : 120;
const CONCURRENCY = 8;

type Rand = () => number;
const int = (rnd: Rand, n: number) => Math.floor(rnd() * n);
const pick = <T>(rnd: Rand, xs: readonly T[]): T => xs[int(rnd, xs.length)]!;

interface Script {
  bytes: string;
  /** clean messages (DATA or BDAT) in order, as the backend must store them */
  messages: string[];
  /** every marker placed inside message data; none may reach the backend as a command */
  markers: string[];
  quit: boolean;
}

function generate(seed: number): Script {
  const rnd = seededRandom(seed);
  let bytes = "EHLO fuzz.example\r\n";
  const messages: string[] = [];
  const markers: string[] = [];
  for (let n = 1 + int(rnd, 6); n > 0; n--) {
    const marker = `ZZ${seed.toString(36)}x${n}`;
    switch (pick(rnd, ["tx", "tx", "bad", "long", "smuggle", "bdat", "rset"] as const)) {
      case "tx": {
        const body = `Subject: ${marker}\r\n\r\n` + Array.from({ length: int(rnd, 30) }, () => pick(rnd, ["text", ".dot", "..", "", "x".repeat(int(rnd, 200))])).join("\r\n") + "\r\n";
        const stuffed = body.replace(/^\./gm, "..");
        bytes += `MAIL FROM:<s@fuzz.example>\r\nRCPT TO:<r@fuzz.example>\r\nDATA\r\n${stuffed}.\r\n`;
        messages.push(stuffed);
        break;
      }
      case "bad":
        bytes += pick(rnd, ["FOO\r\n", "MAIL FROM:bad\r\n", "RCPT TO:<x@y>\r\n", "DATA\r\n", "NOOP\n", "HE\0LO\r\n", "XCLIENT ADDR=1.2.3.4\r\n"]);
        break;
      case "long":
        bytes += "NOOP " + "y".repeat(500 + int(rnd, 3000)) + "\r\n";
        break;
      case "smuggle": {
        const seq = pick(rnd, ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", "\n", "\r"]);
        markers.push(marker);
        bytes += `MAIL FROM:<s@fuzz.example>\r\nRCPT TO:<r@fuzz.example>\r\nDATA\r\nSubject: s\r\n\r\nhi${seq}MAIL FROM:<${marker}@evil.example>\r\nRCPT TO:<${marker}@evil.example>\r\nDATA\r\n${marker}\r\n.\r\n`;
        break;
      }
      case "bdat": {
        const chunk = `Subject: b\r\n\r\nRSET\r\nMAIL FROM:<${marker}@evil.example>\r\n`;
        markers.push(marker);
        bytes += `MAIL FROM:<s@fuzz.example>\r\nRCPT TO:<r@fuzz.example>\r\nBDAT ${chunk.length} LAST\r\n${chunk}`;
        messages.push(chunk);
        break;
      }
      case "rset":
        bytes += "RSET\r\nNOOP\r\n";
        break;
    }
  }
  const quit = rnd() < 0.85;
  if (quit) bytes += "QUIT\r\n";
  return { bytes, messages, markers, quit };
}

async function runCase(port: number, seed: number, script: Script): Promise<{ replies: SmtpReply[]; closed: boolean }> {
  const rnd = seededRandom(seed ^ 0x9e3779b9);
  const s: Socket = connect({ port, host: "127.0.0.1" });
  s.on("error", () => {});
  const parser = new ReplyParser();
  const replies: SmtpReply[] = [];
  let closed = false;
  s.on("data", (c: Buffer) => {
    for (const r of parser.push(c)) replies.push(r);
  });
  s.on("close", () => (closed = true));
  await once(s, "connect");
  const data = Buffer.from(script.bytes, "latin1");
  for (let i = 0; i < data.length; ) {
    const n = 1 + int(rnd, rnd() < 0.2 ? 8 : 4000);
    s.write(data.subarray(i, i + n));
    i += n;
    if (rnd() < 0.1) await sleep(1);
  }
  if (!script.quit) {
    await sleep(int(rnd, 30));
    s.destroy();
    return { replies, closed: true };
  }
  const deadline = Date.now() + 8000;
  while (!closed && Date.now() < deadline) await sleep(10);
  return { replies, closed };
}

describe("smtp session fuzz", () => {
  let raw: RawBackend;
  let p: StartedProxy;
  before(async () => {
    raw = await startRawBackend({ lenientEnd: true });
    p = await startSmtpProxy({ routes: [{ name: "raw", listener: "mail", targets: [`127.0.0.1:${raw.port}`] }], options: { commandTimeout: 5000, dataTimeout: 5000 } });
  });
  after(async () => {
    await p.proxy.close({ timeout: 1000 });
    await raw.close();
  });

  it(`${CASES} random sessions keep the invariants`, async function () {
    this.timeout(120_000);
    for (const batch of seedBatches(BASE, CASES, CONCURRENCY * 4)) {
      await forEachConcurrently(batch.seeds, CONCURRENCY, async (seed) => {
        const script = generate(seed);
        const before = raw.messages.length;
        const out = await runCase(p.port(), seed, script);
        const where = `seed ${seed}`;
        if (script.quit) {
          expect(out.closed, `${where}: still open after QUIT`).to.equal(true);
          expect(out.replies.at(-1)?.code, `${where}: last reply`).to.equal(221);
          expect(out.replies[0]?.code, where).to.equal(220);
        }
        void before;
      });
      await expectNoActiveConnections(p.proxy, 5000);
    }
    if (process.env.FUZZ_VERBOSE) console.log(`backend: ${raw.sessions.length} sessions, ${raw.messages.length} messages, ${raw.sessions.flat().length} command lines`);
    // every message the backend stored is a clean one the clients sent; markers never became commands
    const sent = new Set<string>();
    for (let i = 0; i < CASES; i++) for (const m of generate((BASE + i) >>> 0).messages) sent.add(m);
    for (const m of raw.messages) expect(sent.has(m.toString("latin1")), `unexpected message ${JSON.stringify(m.toString("latin1").slice(0, 200))}`).to.equal(true);
    const lines = raw.sessions.flat();
    for (let i = 0; i < CASES; i++) {
      for (const marker of generate((BASE + i) >>> 0).markers) {
        expect(lines.some((l) => l.includes(marker)), `seed ${BASE + i}: ${marker} reached the backend as a command`).to.equal(false);
      }
    }
    // cases that ended with QUIT delivered all their clean messages
    const stored = new Map<string, number>();
    for (const m of raw.messages) stored.set(m.toString("latin1"), (stored.get(m.toString("latin1")) ?? 0) + 1);
    for (let i = 0; i < CASES; i++) {
      const script = generate((BASE + i) >>> 0);
      if (!script.quit) continue;
      for (const m of script.messages) expect(stored.has(m), `seed ${BASE + i}: a clean message was not delivered`).to.equal(true);
    }
  });
});
