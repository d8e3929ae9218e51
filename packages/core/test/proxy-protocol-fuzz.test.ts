/**
 * Seeded fuzz test of the PROXY protocol parser: random bytes, valid v1/v2 headers (random
 * families, addresses, ports and TLVs, a CRC32C sometimes) and mutated ones (bytes flipped,
 * cut, inserted, lengths changed), each read whole and in random pieces (the bytes so far, as
 * the inbound accept path does), under random limits.
 *
 * Invariants per case: only ProxyHeaderError is thrown; reading in pieces ends as reading whole
 * does (same header and length, or an error, or still partial); "partial" never holds as many
 * bytes as the limit (a header over the limit is refused, not buffered); a complete header is
 * no longer than the bytes or the limit; an unmutated header reads back as it was written.
 *
 * Environment: FUZZ_SEED=<n> (first seed, default 0x50500000; case i uses FUZZ_SEED + i),
 * FUZZ_CASES=<n> (default 3000). A failing case prints its seed and the replay command.
 */
import { expect } from "chai";
import { encodeProxyHeaderV2, parseProxyHeader, PROXY_V2_SIGNATURE, ProxyHeaderError, ProxyTlv, crc32c, type ProxyHeader } from "@switchyard/core";
import { seededRandom } from "@switchyard/test-utils";
import { bytes, campaign, int, pick, runCases, type Rnd } from "./parser-fuzz.js";

const { base: BASE_SEED, cases: CASES } = campaign(0x50500000, 3000);

function ipv4(r: Rnd): string {
  return Array.from({ length: 4 }, () => int(r, 256)).join(".");
}
function ipv6(r: Rnd): string {
  // full form with random zero runs; the parser answers in RFC 5952 form, compared as values below
  return Array.from({ length: 8 }, () => (r() < 0.4 ? "0" : int(r, 0x10000).toString(16))).join(":");
}

interface Generated {
  data: Buffer;
  /** what the header says, when it was left as written */
  expected?: { length: number; source?: { address: string; port: number }; authority?: string; command: string };
  mutated: boolean;
}

function validV1(r: Rnd): Generated {
  const kind = int(r, 3);
  if (kind === 0) {
    const line = `PROXY UNKNOWN${r() < 0.5 ? "" : " " + "x".repeat(int(r, 80))}\r\n`;
    return { data: Buffer.from(line), expected: { length: line.length, command: "PROXY" }, mutated: false };
  }
  const v6 = kind === 2;
  const src = v6 ? ipv6(r) : ipv4(r);
  const dst = v6 ? ipv6(r) : ipv4(r);
  const sp = int(r, 65536);
  const line = `PROXY ${v6 ? "TCP6" : "TCP4"} ${src} ${dst} ${sp} ${int(r, 65536)}\r\n`;
  return { data: Buffer.from(line), expected: { length: line.length, source: { address: src, port: sp }, command: "PROXY" }, mutated: false };
}

function validV2(r: Rnd): Generated {
  const local = r() < 0.15;
  const v6 = r() < 0.4;
  const source = { address: v6 ? ipv6(r) : ipv4(r), port: int(r, 65536) };
  const destination = { address: v6 ? ipv6(r) : ipv4(r), port: int(r, 65536) };
  const authority = r() < 0.6 ? Array.from({ length: 1 + int(r, 40) }, () => pick(r, [..."abcdefghij.-0123456789"])).join("") : undefined;
  let data = local
    ? Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0, 0])])
    : encodeProxyHeaderV2({ source, destination, authority, alpn: r() < 0.3 ? "h2" : undefined });
  // extra TLVs: unknown types, NOOP padding, sometimes a CRC32C over the whole header
  const extra: Buffer[] = [];
  for (let i = int(r, 4); i > 0; i--) {
    const v = bytes(r, int(r, 30));
    extra.push(Buffer.concat([Buffer.from([pick(r, [ProxyTlv.NOOP, ProxyTlv.UNIQUE_ID, 0xe1, 0x30]), v.length >> 8, v.length & 0xff]), v]));
  }
  const withCrc = r() < 0.3;
  if (withCrc) extra.push(Buffer.from([ProxyTlv.CRC32C, 0, 4, 0, 0, 0, 0]));
  if (extra.length > 0) {
    data = Buffer.concat([data, ...extra]);
    data.writeUInt16BE(data.length - 16, 14);
    if (withCrc) data.writeUInt32BE(crc32c(data), data.length - 4);
  }
  return {
    data,
    expected: { length: data.length, command: local ? "LOCAL" : "PROXY", ...(local ? {} : { source }), ...(!local && authority ? { authority } : {}) },
    mutated: false,
  };
}

function mutate(r: Rnd, g: Generated): Generated {
  let d = Buffer.from(g.data);
  for (let n = 1 + int(r, 3); n > 0; n--) {
    const op = int(r, 6);
    const at = int(r, d.length + 1);
    if (op === 0 && d.length > 0) d[Math.min(at, d.length - 1)] = int(r, 256);
    else if (op === 1) d = d.subarray(0, at);
    else if (op === 2) d = Buffer.concat([d.subarray(0, at), bytes(r, 1 + int(r, 8)), d.subarray(at)]);
    else if (op === 3 && d.length >= 16) d.writeUInt16BE(int(r, 0x10000), 14);
    else if (op === 4 && d.length > 0) d[Math.min(at, d.length - 1)] = pick(r, [0x20, 0x0d, 0x0a, 0x3a, 0x2e, 0x30]);
    else d = Buffer.concat([d, bytes(r, int(r, 40))]);
  }
  return { data: d, mutated: true };
}

function generate(r: Rnd): Generated {
  const mode = int(r, 5);
  if (mode === 0) {
    const lead = pick(r, [Buffer.alloc(0), Buffer.from("PROXY "), PROXY_V2_SIGNATURE]);
    return { data: Buffer.concat([lead, bytes(r, int(r, 200))]), mutated: true };
  }
  const g = mode <= 2 ? validV1(r) : validV2(r);
  const withData = r() < 0.5 ? { ...g, data: Buffer.concat([g.data, bytes(r, int(r, 64))]) } : g;
  return r() < 0.5 ? mutate(r, withData) : withData;
}

type Outcome = { kind: "partial" } | { kind: "error"; message: string } | { kind: "done"; length: number; header: ProxyHeader };

function outcome(data: Buffer, max: number): Outcome {
  try {
    const p = parseProxyHeader(data, max);
    return p.state === "partial" ? { kind: "partial" } : { kind: "done", length: p.length, header: p.header };
  } catch (err) {
    if (!(err instanceof ProxyHeaderError)) throw new Error(`a ${(err as Error)?.constructor?.name} escaped: ${(err as Error)?.stack}`);
    return { kind: "error", message: err.message };
  }
}

/** Feeds growing prefixes, as the accept path does, until the parser decides. */
function inPieces(r: Rnd, data: Buffer, max: number): Outcome {
  let at = 0;
  for (;;) {
    at = Math.min(data.length, at + 1 + int(r, r() < 0.5 ? 4 : 64));
    const o = outcome(data.subarray(0, at), max);
    if (o.kind !== "partial" || at === data.length) return o;
  }
}

const sameIp = (a: string, b: string) => a.replace(/(^|:)0+(?=[0-9a-f])/g, "$1") === b || canonical(a) === canonical(b);
function canonical(ip: string): string {
  if (!ip.includes(":")) return ip;
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => parseInt(g, 16).toString(16)).join(":");
}

function checkCase(seed: number): void {
  const r = seededRandom(seed);
  const g = generate(r);
  const max = pick(r, [4096, 4096, 107, 64, 16 + int(r, 5000)]);
  const whole = outcome(g.data, max);
  const pieces = inPieces(r, g.data, max);
  const where = `seed ${seed} (replay: FUZZ_SEED=${seed} FUZZ_CASES=1 pnpm exec mocha packages/core/dist-test/proxy-protocol-fuzz.test.js), max ${max}, data ${g.data.toString("hex").slice(0, 400)}`;
  expect(pieces.kind, where).to.equal(whole.kind);
  if (whole.kind === "partial") expect(g.data.length, `partial with as many bytes as the limit: ${where}`).to.be.below(max);
  if (whole.kind === "done" && pieces.kind === "done") {
    expect(pieces.length, where).to.equal(whole.length);
    expect(pieces.header, where).to.deep.equal(whole.header);
    expect(whole.length, where).to.be.at.most(Math.min(max, g.data.length));
  }
  if (g.expected && !g.mutated) {
    // an unmutated header within the limit reads back as written
    if (g.expected.length <= (g.data[0] === 0x0d ? max : Math.min(max, 107))) {
      expect(whole.kind, where).to.equal("done");
      if (whole.kind !== "done") return;
      expect(whole.length, where).to.equal(g.expected.length);
      expect(whole.header.command, where).to.equal(g.expected.command);
      if (g.expected.source) {
        expect(whole.header.source?.port, where).to.equal(g.expected.source.port);
        expect(sameIp(g.expected.source.address, whole.header.source!.address), `${g.expected.source.address} vs ${whole.header.source!.address}: ${where}`).to.equal(true);
      } else expect(whole.header.source, where).to.equal(undefined);
      expect(whole.header.authority, where).to.equal(g.expected.authority);
    }
  }
}

describe("fuzz: PROXY protocol parser", function () {
  this.timeout(120_000);
  it(`holds its invariants over ${CASES} seeded cases from ${BASE_SEED}`, () => {
    runCases(BASE_SEED, CASES, checkCase);
  });
});
