/**
 * Seeded fuzz test of the TLS ClientHello reader: random bytes, valid ClientHellos (random SNI,
 * ALPN lists, GREASE, padding, versions, split into records of random sizes, sometimes followed
 * by more bytes) and mutated ones (bytes flipped, cut, inserted, record or handshake lengths
 * changed), each pushed whole and in random pieces (1 byte to a few hundred) under random limits.
 *
 * Invariants per case: only ClientHelloError is thrown; pieces end as the whole does (the same
 * ClientHello, or an error, or still waiting); waiting never holds more bytes than the limit; an
 * unmutated ClientHello within the limit gives the SNI and ALPN it was built with.
 *
 * Environment: FUZZ_SEED=<n> (first seed, default 0x7c1e0000; case i uses FUZZ_SEED + i),
 * FUZZ_CASES=<n> (default 2000). A failing case prints its seed and the replay command.
 */
import { expect } from "chai";
import { ClientHelloError, ClientHelloReader, type ClientHello } from "@switchyard/core";
import { seededRandom } from "@switchyard/test-utils";
import { bytes, campaign, int, pick, runCases, type Rnd } from "./parser-fuzz.js";
import { buildClientHello, toRecords, type HelloSpec } from "./client-hello-build.js";

const { base: BASE_SEED, cases: CASES } = campaign(0x7c1e0000, 2000);

function label(r: Rnd): string {
  const chars = "abcdefghijklmnopqrstuvwxyz0123456789";
  const inner = "abcdefghijklmnopqrstuvwxyz0123456789-_";
  const n = 1 + int(r, 12);
  let s = pick(r, [...chars]);
  for (let i = 1; i < n; i++) s += pick(r, [...(i === n - 1 ? chars : inner)]);
  return s;
}

interface Generated {
  data: Buffer;
  spec?: HelloSpec;
  /** bytes of the records that carry the ClientHello */
  helloLength?: number;
}

function generate(r: Rnd): Generated {
  if (r() < 0.15) return { data: Buffer.concat([pick(r, [Buffer.alloc(0), Buffer.from([22, 3, 1])]), bytes(r, int(r, 300))]) };
  const spec: HelloSpec = {
    sni: r() < 0.8 ? Array.from({ length: 1 + int(r, 4) }, () => label(r)).join(".") : undefined,
    alpn: r() < 0.6 ? Array.from({ length: 1 + int(r, 3) }, () => pick(r, ["h2", "http/1.1", "postgresql", "x".repeat(1 + int(r, 20))])) : undefined,
    grease: r() < 0.5,
    padding: r() < 0.3 ? int(r, 3000) : undefined,
    sessionIdLength: pick(r, [0, 32]),
    noExtensions: r() < 0.05,
  };
  const records = toRecords(buildClientHello(spec), pick(r, [16384, 1 + int(r, 40), 1 + int(r, 600)]));
  let data = r() < 0.3 ? Buffer.concat([records, bytes(r, int(r, 100))]) : records;
  if (r() < 0.5) return { data, spec, helloLength: records.length };
  for (let n = 1 + int(r, 3); n > 0; n--) {
    const op = int(r, 5);
    const at = int(r, data.length + 1);
    if (op === 0 && data.length > 0) data[Math.min(at, data.length - 1)] = int(r, 256);
    else if (op === 1) data = data.subarray(0, at);
    else if (op === 2) data = Buffer.concat([data.subarray(0, at), bytes(r, 1 + int(r, 8)), data.subarray(at)]);
    else if (op === 3 && data.length >= 5) data.writeUInt16BE(int(r, 0x10000), 3); // a record length
    else if (op === 4 && data.length >= 9) data.writeUIntBE(int(r, 0x1000000), 6, 3); // the handshake length
  }
  return { data: Buffer.from(data) };
}

type Outcome = { kind: "partial" } | { kind: "error"; message: string } | { kind: "done"; hello: ClientHello };

function feed(r: Rnd | undefined, data: Buffer, max: number): Outcome {
  const reader = new ClientHelloReader(max);
  let at = 0;
  try {
    while (at < data.length) {
      const n = r === undefined ? data.length : 1 + int(r, r() < 0.5 ? 3 : 400);
      const hello = reader.push(data.subarray(at, at + n));
      at += n;
      if (hello !== undefined) return { kind: "done", hello };
    }
    return { kind: "partial" };
  } catch (err) {
    if (!(err instanceof ClientHelloError)) throw new Error(`a ${(err as Error)?.constructor?.name} escaped: ${(err as Error)?.stack}`);
    return { kind: "error", message: err.message };
  }
}

function checkCase(seed: number): void {
  const r = seededRandom(seed);
  const g = generate(r);
  const max = pick(r, [16384, 16384, 512, 100 + int(r, 4000)]);
  const whole = feed(undefined, g.data, max);
  const pieces = feed(r, g.data, max);
  const where = `seed ${seed} (replay: FUZZ_SEED=${seed} FUZZ_CASES=1 pnpm exec mocha packages/core/dist-test/client-hello-fuzz.test.js), max ${max}, ${g.data.length} bytes`;
  expect(pieces.kind, where).to.equal(whole.kind);
  if (whole.kind === "partial") expect(g.data.length, `waiting with more bytes than the limit: ${where}`).to.be.at.most(max);
  if (whole.kind === "done" && pieces.kind === "done") expect(pieces.hello, where).to.deep.equal(whole.hello);
  if (g.spec !== undefined && g.helloLength !== undefined && g.helloLength <= max) {
    expect(whole.kind, `${where}: ${whole.kind === "error" ? whole.message : ""}`).to.equal("done");
    if (whole.kind !== "done") return;
    expect(whole.hello.sni, where).to.equal(g.spec.noExtensions ? undefined : g.spec.sni);
    const alpn = g.spec.noExtensions || !g.spec.alpn ? [] : [...(g.spec.grease ? ["\x5a\x5a"] : []), ...g.spec.alpn];
    expect(whole.hello.alpn, where).to.deep.equal(alpn);
    expect(whole.hello.length, where).to.equal(g.helloLength);
  }
}

describe("fuzz: TLS ClientHello reader", function () {
  this.timeout(120_000);
  it(`holds its invariants over ${CASES} seeded cases from ${BASE_SEED}`, () => {
    runCases(BASE_SEED, CASES, checkCase);
  });
});
