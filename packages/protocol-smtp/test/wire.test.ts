import { expect } from "chai";
import { CommandLineReader, DataReader, ReplyParser, ReplyParseError, formatReply, xtext, unxtext, type LineEvent } from "@switchyard/protocol-smtp";

const b = (s: string) => Buffer.from(s, "latin1");

function lines(reader: CommandLineReader, limit = 512): LineEvent[] {
  const out: LineEvent[] = [];
  for (let ev = reader.readLine(limit); ev !== undefined; ev = reader.readLine(limit)) out.push(ev);
  return out;
}

/** Feeds `chunks` to a DataReader; what it forwarded, whether it ended, what was left. */
function runData(chunks: string[], policy: "reject" | "normalize" = "reject") {
  const r = new DataReader(policy);
  const out: Buffer[] = [];
  let rest: Buffer | undefined;
  let done = false;
  for (const c of chunks) {
    const step = r.push(b(c));
    out.push(...step.out);
    if (step.done) {
      done = true;
      rest = step.rest;
      break;
    }
  }
  return { out: Buffer.concat(out).toString("latin1"), done, rest: rest?.toString("latin1"), violation: r.violation, discarding: r.discarding, size: r.size };
}

describe("smtp wire: command lines", () => {
  it("frames CRLF lines split anywhere", () => {
    const r = new CommandLineReader();
    r.push(b("EHLO a.exa"));
    expect(lines(r)).to.deep.equal([]);
    r.push(b("mple\r"));
    expect(lines(r)).to.deep.equal([]);
    r.push(b("\nMAIL FROM:<a@b>\r\nRC"));
    expect(lines(r)).to.deep.equal([
      { kind: "line", text: "EHLO a.example" },
      { kind: "line", text: "MAIL FROM:<a@b>" },
    ]);
    expect(r.buffered).to.equal(2);
  });

  it("accepts a line of exactly 512 octets and reports 513 as too long, once, then goes on", () => {
    const r = new CommandLineReader();
    r.push(b("X".repeat(510) + "\r\n" + "Y".repeat(511) + "\r\nNOOP\r\n"));
    const ev = lines(r);
    expect(ev.map((e) => e.kind)).to.deep.equal(["line", "too-long", "line"]);
    expect(ev[2]).to.deep.equal({ kind: "line", text: "NOOP" });
  });

  it("keeps no more than the limit of an endless line, and reports it where it ends", () => {
    const r = new CommandLineReader();
    for (let i = 0; i < 100; i++) {
      r.push(b("A".repeat(1000)));
      expect(lines(r)).to.deep.equal([]);
      expect(r.buffered).to.be.at.most(1000 + 512);
    }
    r.push(b("A\r\nQUIT\r\n"));
    expect(lines(r)).to.deep.equal([{ kind: "too-long" }, { kind: "line", text: "QUIT" }]);
  });

  it("refuses a bare LF line end and a CR or NUL inside a line", () => {
    const r = new CommandLineReader();
    r.push(b("NOOP\nRSET\rX\r\nNO\0OP\r\nQUIT\r\n"));
    expect(lines(r).map((e) => e.kind)).to.deep.equal(["bare-lf", "bad-char", "bad-char", "line"]);
  });

  it("hands over what follows for DATA and takes back what a reader did not use", () => {
    const r = new CommandLineReader();
    r.push(b("DATA\r\nSubject: x\r\n"));
    expect(r.readLine(512)).to.deep.equal({ kind: "line", text: "DATA" });
    expect(r.take().toString()).to.equal("Subject: x\r\n");
    r.unshift(b("QUIT\r\n"));
    expect(lines(r)).to.deep.equal([{ kind: "line", text: "QUIT" }]);
  });
});

describe("smtp wire: replies", () => {
  it("parses multi-line replies split at every byte", () => {
    const wire = "250-mx.example greets you\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 go ahead\r\n";
    for (let cut = 0; cut <= wire.length; cut++) {
      const p = new ReplyParser();
      const got = [...p.push(b(wire.slice(0, cut))), ...p.push(b(wire.slice(cut)))];
      expect(got).to.deep.equal([
        { code: 250, lines: ["mx.example greets you", "PIPELINING", "SIZE 1000"] },
        { code: 354, lines: ["go ahead"] },
      ]);
    }
  });

  it("accepts a bare code and LF line ends from a sloppy backend", () => {
    const p = new ReplyParser();
    expect(p.push(b("250\n221 bye\n"))).to.deep.equal([
      { code: 250, lines: [""] },
      { code: 221, lines: ["bye"] },
    ]);
  });

  it("throws on garbage, a code change inside a reply, and an endless line", () => {
    expect(() => new ReplyParser().push(b("HTTP/1.1 200 OK\r\n"))).to.throw(ReplyParseError);
    expect(() => new ReplyParser().push(b("250-a\r\n251 b\r\n"))).to.throw(ReplyParseError);
    const p = new ReplyParser();
    expect(() => {
      for (let i = 0; i < 10; i++) p.push(b("2".repeat(1000)));
    }).to.throw(ReplyParseError);
  });

  it("formats replies with the enhanced code on every line and no CR/LF inside", () => {
    expect(formatReply(250, "2.0.0", ["a", "b"])).to.equal("250-2.0.0 a\r\n250 2.0.0 b\r\n");
    expect(formatReply(550, "5.7.1", "x\r\n250 injected")).to.equal("550 5.7.1 x 250 injected\r\n");
  });
});

describe("smtp wire: DATA", () => {
  it("ends at <CRLF>.<CRLF> split at every position and leaves dot-stuffing untouched", () => {
    const msg = "Subject: t\r\n\r\n..leading dot\r\n.\r\nMAIL FROM:<x@y>\r\n";
    const end = msg.indexOf("\r\n.\r\n") + 5;
    for (let cut = 0; cut <= msg.length; cut++) {
      for (let cut2 = cut; cut2 <= msg.length; cut2 += 7) {
        const r = runData([msg.slice(0, cut), msg.slice(cut, cut2), msg.slice(cut2)]);
        expect(r.done, `cuts ${cut},${cut2}`).to.equal(true);
        expect(r.out).to.equal(msg.slice(0, end));
        expect(r.violation).to.equal(undefined);
      }
    }
  });

  it("ends at once on an empty message", () => {
    expect(runData([".\r\nQUIT\r\n"])).to.include({ out: ".\r\n", done: true, rest: "QUIT\r\n" });
  });

  for (const [name, body, kind] of [
    ["<LF>.<LF>", "a\n.\nRSET\r\n", "bare-lf"],
    ["<LF>.<CRLF>", "a\n.\r\nRSET\r\n", "bare-lf"],
    ["<CRLF>.<LF>", "a\r\n.\nRSET\r\n", "bare-lf"],
    ["<CR>.<CR>", "a\r.\rRSET\r\n", "bare-cr"],
    ["<CRLF>.<CR>", "a\r\n.\rRSET\r\n", "bare-cr"],
    ["bare LF", "a\nb\r\n", "bare-lf"],
    ["bare CR", "a\rb\r\n", "bare-cr"],
  ] as const) {
    it(`reject mode: ${name} never ends the message, and nothing from it on is forwarded`, () => {
      for (let cut = 0; cut <= body.length; cut++) {
        const r = runData([body.slice(0, cut), body.slice(cut), "tail\r\n.\r\nNEXT\r\n"]);
        expect(r.violation).to.equal(kind);
        expect(r.done).to.equal(true);
        expect(r.rest).to.equal("NEXT\r\n");
        // forwarded: the text before it at most, never a pending CR or a dot line
        expect(["", "a", "a\r\n"]).to.include(r.out);
      }
    });
  }

  it("normalize mode: bare newlines become CRLF and a made line starting with '.' is stuffed", () => {
    expect(runData(["a\nb\rc\r\n.\r\n"], "normalize").out).to.equal("a\r\nb\r\nc\r\n.\r\n");
    expect(runData(["a\n.\nb\r\n.\r\n"], "normalize").out).to.equal("a\r\n..\r\nb\r\n.\r\n");
    expect(runData(["a\r\n.\nb\r\n.\r\n"], "normalize").out).to.equal("a\r\n..\r\nb\r\n.\r\n");
    expect(runData(["a\r\n.\rb\r\n.\r\n"], "normalize").out).to.equal("a\r\n..\r\nb\r\n.\r\n");
    expect(runData(["a\r.\rb\r\n.\r\n"], "normalize").out).to.equal("a\r\n..\r\nb\r\n.\r\n");
    expect(runData(["a\n.x\r\n.\r\n"], "normalize").out).to.equal("a\r\n..x\r\n.\r\n");
  });

  it("counts the size and stops forwarding on abort, still finding the end", () => {
    const r = new DataReader();
    expect(r.push(b("x".repeat(100))).out).to.have.length(1);
    expect(r.size).to.equal(100);
    r.abort();
    expect(r.push(b("y\r\n.\r")).out).to.deep.equal([]);
    const last = r.push(b("\nQUIT\r\n"));
    expect(last.done).to.equal(true);
    expect(last.rest?.toString()).to.equal("QUIT\r\n");
  });
});

describe("smtp wire: xtext", () => {
  it("encodes +, = and octets outside 33-126, and decodes back", () => {
    expect(xtext("a+b=c d\u00e9")).to.equal("a+2Bb+3Dc+20d+C3+A9");
    expect(unxtext(xtext("[UNAVAILABLE] x+y=z"))).to.equal("[UNAVAILABLE] x+y=z");
  });
});
