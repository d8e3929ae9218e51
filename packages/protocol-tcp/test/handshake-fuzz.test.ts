/**
 * Seeded fuzz of the handshake parsers, alone and through the proxy.
 *
 * Parsers: valid PostgreSQL first packets, MySQL handshake responses and greetings, mutated;
 * each parse returns (never throws) within a few ms, and what it accepts is consistent (a
 * startup's parameters are unique and account for every byte; a cancel key is 4-256 bytes).
 *
 * Through the proxy: scripted clients send mutated first packets in random chunks with random
 * pauses, then end with a FIN, a reset or silence, against a "postgres" and a "mysql" listener
 * whose backends are scripted too (they accept any startup). Per case: the client's socket
 * closes within the deadlines (nothing hangs), the proxy's first answer has a valid shape. Per
 * run: no uncaught exception, no active connection.
 *
 * Environment: FUZZ_SEED=<n> (first seed), FUZZ_CASES=<n> (through-proxy cases; parsers run
 * 40x as many). Replay one: FUZZ_SEED=<seed> FUZZ_CASES=1 pnpm test protocol-tcp
 */
import { expect } from "chai";
import { once } from "node:events";
import { connect } from "node:net";
import { parseFirstPacket, parseGreeting, parseHandshakeResponse } from "@switchyard/protocol-tcp";
import { forEachConcurrently, seededRandom, startTcpServer, type TestServer } from "@switchyard/test-utils";
import { OK_PAYLOAD, packet, startFakeMysql, type FakeMysql } from "./mysql-fake-backend.js";
import { startMyProxy, type MyEnv } from "./mysql-helpers.js";
import { startPgProxy, type PgEnv } from "./pg-helpers.js";
import { int, mutate, mysqlClientBytes, mysqlGreeting, mysqlResponse, pgFirstPacket, type Rnd } from "./handshake-fuzz-gen.js";

const BASE_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5e1d0000;
const CASES = process.env.FUZZ_CASES !== undefined ? Number(process.env.FUZZ_CASES) : 64;
const TIMEOUTS = { handshake: 600, connect: 1000, idle: 800 };

describe("fuzz: PostgreSQL and MySQL handshake parsers", function () {
  this.timeout(120_000);

  it(`parses ${CASES * 40} mutated packets without a throw, a hang or an inconsistent answer`, () => {
    for (let i = 0; i < CASES * 40; i++) {
      const seed = (BASE_SEED + i) >>> 0;
      const rnd = seededRandom(seed);
      const which = i % 3;
      const input = which === 0 ? mutate(rnd, pgFirstPacket(rnd)) : mutate(rnd, which === 1 ? mysqlResponse(rnd) : mysqlGreeting(rnd));
      const started = performance.now();
      try {
        if (which === 0) {
          const p = parseFirstPacket(input);
          if (p.kind === "startup") {
            const keys = p.params.map(([k]) => k);
            expect(new Set(keys).size).to.equal(keys.length);
            const bytes = p.params.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 2, 9);
            expect(bytes).to.equal(input.length);
          }
          if (p.kind === "cancel") expect(p.secret.length).to.be.within(4, 256);
        } else if (which === 1) {
          const r = parseHandshakeResponse(input);
          if (r.kind === "response") expect(r.user.includes("\0")).to.equal(false);
        } else {
          const g = parseGreeting(input);
          if (g !== undefined) expect(g.scramble.length).to.be.at.most(8 + 255);
        }
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message} (input ${input.toString("hex").slice(0, 200)})`, { cause: err });
      }
      expect(performance.now() - started, `seed ${seed} took too long`).to.be.below(50);
    }
  });

  describe("through the proxy", () => {
    let pgEnv: PgEnv;
    let myEnv: MyEnv;
    let pgBackend: TestServer;
    let myBackend: FakeMysql;
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);

    before(async () => {
      process.on("uncaughtException", onUncaught);
      process.on("unhandledRejection", onUncaught);
      // a PostgreSQL backend that accepts any startup: AuthenticationOk, BackendKeyData, ReadyForQuery
      pgBackend = await startTcpServer((s) => {
        s.once("data", () => s.write(Buffer.from("520000000800000000" + "4b0000000c0000002a00000007" + "5a0000000549", "hex")));
      });
      myBackend = await startFakeMysql("mysql_native_password", Buffer.from("abcdefghijklmnopqrst"), (step) => (step === 0 ? [[2, OK_PAYLOAD]] : []));
      pgEnv = await startPgProxy([{ listener: "pg", targets: [`127.0.0.1:${pgBackend.port}`] }], { timeouts: TIMEOUTS }, { authTimeoutMs: 600 });
      myEnv = await startMyProxy([{ listener: "my", targets: [`127.0.0.1:${myBackend.port}`] }], { timeouts: TIMEOUTS }, { authTimeoutMs: 600 });
    });

    after(async () => {
      process.off("uncaughtException", onUncaught);
      process.off("unhandledRejection", onUncaught);
      await pgEnv.close();
      await myEnv.close();
      await pgBackend.close();
      await myBackend.close();
    });

    it(`survives ${CASES} scripted clients per protocol`, async () => {
      const seeds = Array.from({ length: CASES * 2 }, (_, i) => (BASE_SEED + i) >>> 0);
      await forEachConcurrently(seeds, 8, async (seed) => {
        const rnd = seededRandom(seed);
        const mysql = seed % 2 === 1;
        try {
          await runClient(rnd, mysql ? myEnv.port() : pgEnv.port(), mysql);
        } catch (err) {
          throw new Error(`seed ${seed} (${mysql ? "mysql" : "postgres"}): ${(err as Error).message}`, { cause: err });
        }
      });
      expect(uncaught).to.deep.equal([]);
    });
  });
});

async function runClient(rnd: Rnd, port: number, mysql: boolean): Promise<void> {
  const s = connect({ host: "127.0.0.1", port });
  s.on("error", () => {});
  const got: Buffer[] = [];
  s.on("data", (d: Buffer) => got.push(d));
  const closed = once(s, "close");
  await once(s, "connect");
  if (mysql) await Promise.race([once(s, "data"), closed]);
  const bytes = mysql ? mysqlClientBytes(rnd) : Buffer.concat(Array.from({ length: 1 + int(rnd, 2) }, () => (rnd() < 0.8 ? mutate(rnd, pgFirstPacket(rnd)) : pgFirstPacket(rnd))));
  let at = 0;
  while (at < bytes.length && !s.destroyed) {
    const n = 1 + int(rnd, Math.max(1, bytes.length - at));
    s.write(bytes.subarray(at, at + n));
    at += n;
    if (rnd() < 0.3) await new Promise((r) => setTimeout(r, int(rnd, 30)));
  }
  const ending = int(rnd, 3);
  if (ending === 0) s.end();
  else if (ending === 1) s.resetAndDestroy();
  const deadline = setTimeout(() => s.destroy(new Error("the proxy did not close the connection in time")), 5000);
  await closed;
  clearTimeout(deadline);
  const answer = Buffer.concat(got);
  if (answer.length === 0) return;
  if (mysql) {
    // the greeting, then an ERR, an AuthSwitchRequest or an OK
    expect(answer[4]).to.equal(10);
    const next = answer.subarray(4 + answer.readUIntLE(0, 3));
    if (next.length >= 5) expect([0x00, 0xfe, 0xff]).to.include(next[4]);
  } else {
    expect(["N", "S", "E", "R"]).to.include(String.fromCharCode(answer[0]!));
  }
}

void packet;
