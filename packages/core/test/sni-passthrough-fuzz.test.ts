/**
 * Seeded fuzz test of the accept path in front of a tcp listener with both `proxyProtocol` and
 * `tlsPassthrough`: each case sends (over a real socket, in random pieces with random pauses) a
 * PROXY header (v1 or v2, valid, mutated or missing), a ClientHello (valid, mutated, random
 * bytes or missing) and some payload, then ends with a FIN, a reset, or stays silent. The route
 * sends a PROXY v1 header to a recording backend, which is how a backend connection is matched
 * to its case (the client address the inbound header gave, else the client's own port).
 *
 * The expected outcome comes from core's parsers (unit-tested and fuzzed on their own): a
 * header that fails to parse is closed with protocol-error and never dialed; a partial one
 * times out (silence) or ends client-closed (FIN); a valid header and ClientHello reach the
 * backend with every byte after the header, unchanged and in order (a prefix of them after a
 * reset). Per run: every connection closes, the active count returns to zero, nothing throws.
 *
 * Environment: FUZZ_SEED=<n> (default 0x5e1f0000; case i uses FUZZ_SEED + i), FUZZ_CASES=<n>
 * (default 96), FUZZ_CONCURRENCY=<n> (default 8). A failing case prints its seed and the replay.
 */
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { expect } from "chai";
import {
  ClientHelloReader,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  encodeProxyHeaderV2Local,
  parseProxyHeader,
  type CloseInfo,
  type ConnectionInfo,
} from "@switchyard/core";
import { expectNoActiveConnections, forEachConcurrently, seededRandom, sleep, startProxy, startTcpServer, waitFor, type StartedProxy, type TestServer } from "@switchyard/test-utils";
import { buildClientHello, toRecords } from "./client-hello-build.js";
import { bytes, campaign, int, pick, type Rnd } from "./parser-fuzz.js";

const { base: BASE_SEED, cases: CASES } = campaign(0x5e1f0000, 96);
const CONCURRENCY = process.env.FUZZ_CONCURRENCY !== undefined ? Math.max(1, Number(process.env.FUZZ_CONCURRENCY)) : 8;
const HEADER_TIMEOUT = 300;
const HANDSHAKE = 600;
const IDLE = 400;

type End = "fin" | "reset" | "silence";

interface Case {
  seed: number;
  header: Buffer;
  rest: Buffer;
  end: End;
  pieces: number[];
  pauses: number[];
  /** what the parsers say */
  expect: "header-error" | "header-partial" | "hello-error" | "hello-partial" | "routed";
  /** the client address the backend will see, when the header gives one */
  clientKey?: string;
}

function mutate(r: Rnd, buf: Buffer): Buffer {
  let d = Buffer.from(buf);
  const op = int(r, 3);
  const at = int(r, d.length + 1);
  if (op === 0 && d.length > 0) d[Math.min(at, d.length - 1)] = int(r, 256);
  else if (op === 1) d = d.subarray(0, at);
  else d = Buffer.concat([d.subarray(0, at), bytes(r, 1 + int(r, 6)), d.subarray(at)]);
  return d;
}

function generate(seed: number): Case {
  const r = seededRandom(seed);
  const src = { address: `10.${int(r, 256)}.${int(r, 256)}.${1 + int(r, 254)}`, port: 1 + int(r, 65535) };
  const dst = { address: "192.0.2.1", port: 443 };
  const kind = int(r, 10);
  let header =
    kind < 4 ? encodeProxyHeaderV1({ source: src, destination: dst })
    : kind < 8 ? encodeProxyHeaderV2({ source: src, destination: dst, authority: r() < 0.5 ? "lb.example" : undefined })
    : kind < 9 ? encodeProxyHeaderV2Local()
    : Buffer.alloc(0);
  if (r() < 0.2) header = mutate(r, header);
  const helloKind = int(r, 10);
  let hello =
    helloKind < 7 ? toRecords(buildClientHello({ sni: r() < 0.8 ? `h${int(r, 100)}.fz` : undefined, alpn: r() < 0.5 ? ["h2"] : undefined, grease: r() < 0.5 }), pick(r, [16384, 1 + int(r, 200)]))
    : helloKind < 8 ? bytes(r, int(r, 100))
    : helloKind < 9 ? Buffer.from("GET / HTTP/1.1\r\n\r\n")
    : Buffer.alloc(0);
  if (helloKind < 7 && r() < 0.2) hello = mutate(r, hello);
  const payload = bytes(r, int(r, 3000));
  const rest = Buffer.concat([hello, payload]);

  const whole = Buffer.concat([header, rest]);
  // sometimes the client stops early: in the header, in the ClientHello or after it
  const all = r() < 0.2 ? whole.subarray(0, int(r, Math.min(whole.length, header.length + 400) + 1)) : whole;
  const pieces: number[] = [];
  const pauses: number[] = [];
  for (let at = 0; at < all.length; ) {
    const n = 1 + int(r, pick(r, [4, 64, 1024]));
    pieces.push(n);
    pauses.push(r() < 0.3 ? int(r, 6) : 0);
    at += n;
  }
  const end = pick(r, ["fin", "fin", "reset", "silence"] as const);
  // the oracle: core's own parsers over what the case sends
  let expected: Case["expect"];
  let clientKey: string | undefined;
  let headerLength = 0;
  try {
    const p = parseProxyHeader(all);
    if (p.state === "partial") expected = "header-partial";
    else {
      headerLength = p.length;
      if (p.header.command === "PROXY" && p.header.source) clientKey = `${p.header.source.address}:${p.header.source.port}`;
      expected = "routed";
    }
  } catch {
    expected = "header-error";
  }
  if (expected === "routed") {
    try {
      const h = new ClientHelloReader().push(all.subarray(headerLength));
      if (h === undefined) expected = "hello-partial";
    } catch {
      expected = "hello-error";
    }
  }
  return { seed, header: all.subarray(0, headerLength), rest: all.subarray(headerLength), end, pieces, pauses, expect: expected, ...(clientKey ? { clientKey } : {}) };
}

describe("fuzz: PROXY header and ClientHello peek on a tcp listener", function () {
  this.timeout(180_000);
  let started: StartedProxy;
  let backend: TestServer;
  /** bytes each backend connection received after the proxy's own v1 header, by client address */
  const received = new Map<string, { data: Buffer; ended: boolean }>();
  const closes = new Map<string, CloseInfo>();
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);

  before(async () => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    backend = await startTcpServer((s) => {
      let buf = Buffer.alloc(0);
      let key: string | undefined;
      s.on("data", (d: Buffer) => {
        if (key !== undefined) {
          received.get(key)!.data = Buffer.concat([received.get(key)!.data, d]);
          return;
        }
        buf = Buffer.concat([buf, d]);
        const p = parseProxyHeader(buf);
        if (p.state === "partial") return;
        key = `${p.header.source!.address}:${p.header.source!.port}`;
        received.set(key, { data: Buffer.from(buf.subarray(p.length)), ended: false });
      });
      s.on("end", () => {
        if (key !== undefined) received.get(key)!.ended = true;
        s.end();
      });
    });
    started = await startProxy({
      listeners: [
        {
          name: "l",
          protocol: "tcp",
          port: 0,
          proxyProtocol: { trustedProxies: ["127.0.0.0/8"], timeoutMs: HEADER_TIMEOUT },
          options: { tlsPassthrough: true },
          timeouts: { handshake: HANDSHAKE, idle: IDLE },
        },
      ],
      routes: [{ name: "any", listener: "l", targets: [`127.0.0.1:${backend.port}`], options: { proxyProtocol: "v1" } }],
    });
    started.proxy.events.on("connectionClose", (c: ConnectionInfo, info) => closes.set(`${c.clientIp}:${c.clientPort}`, info));
  });

  after(async () => {
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUncaught);
    await started.proxy.close({ timeout: 100 });
    await backend.close();
  });

  async function run(c: Case): Promise<void> {
    // each case has its own client address, so a reused port never mixes two cases up
    const i = (c.seed - BASE_SEED) >>> 0;
    const localAddress = `127.${64 + ((i >> 15) & 0x3f)}.${(i >> 7) & 255}.${1 + (i & 127)}`;
    const s: Socket = connect({ port: started.port(), host: "127.0.0.1", localAddress });
    s.on("error", () => {});
    s.on("data", () => {});
    await once(s, "connect");
    s.setNoDelay(true);
    const peerKey = `${localAddress}:${s.localPort}`;
    const key = c.clientKey ?? peerKey;
    const all = Buffer.concat([c.header, c.rest]);
    let at = 0;
    for (let i = 0; i < c.pieces.length && !s.destroyed; i++) {
      s.write(all.subarray(at, at + c.pieces[i]!));
      at += c.pieces[i]!;
      if (c.pauses[i]) await sleep(c.pauses[i]!);
    }
    if (c.end === "fin") s.end();
    else if (c.end === "reset") s.resetAndDestroy();
    const where = `seed ${c.seed} (replay: FUZZ_SEED=${c.seed} FUZZ_CASES=1 FUZZ_CONCURRENCY=1), expect ${c.expect}, end ${c.end}, header ${c.header.length} B, rest ${c.rest.length} B`;
    // the proxy closes it: at the latest after the header/handshake deadline or the idle timeout.
    // After a reset the peer's address may be gone before the proxy asks for it (closed as ":0"):
    // then it is enough that no connection of this case is left
    const mine = (x: { info: ConnectionInfo }) => `${x.info.clientIp}:${x.info.clientPort}` === peerKey || `${x.info.clientIp}:${x.info.clientPort}` === c.clientKey;
    const closed = () => closes.has(peerKey) || (c.clientKey !== undefined && closes.has(c.clientKey));
    await waitFor(() => closed() || (c.end === "reset" && ![...started.proxy.connections].some(mine)), HANDSHAKE + IDLE + 3000, `close of ${where}`).catch((err: Error) => {
      const open = [...started.proxy.connections].map((x) => `${x.info.clientIp}:${x.info.clientPort} ${x.state} up=${x.upstream ? "yes" : "no"}`);
      throw new Error(`${err.message}; open: ${open.join(", ")}; got ${received.get(key)?.data.length ?? "-"} B`);
    });
    s.destroy();
    const got = received.get(key);
    if (c.end === "reset") {
      // a reset may lose bytes in flight; what arrived is an in-order prefix
      if (got) expect(c.rest.subarray(0, got.data.length).equals(got.data), `not a prefix: ${where}`).to.equal(true);
      return;
    }
    const info = closes.get(peerKey) ?? closes.get(c.clientKey!)!;
    if (c.expect !== "routed") {
      expect(got, `dialed: ${where}`).to.equal(undefined);
      const allowed: Record<string, string[]> = {
        "header-error": ["protocol-error"],
        "hello-error": ["protocol-error"],
        "header-partial": c.end === "silence" ? ["handshake-timeout"] : ["client-closed", "client-error"],
        "hello-partial": c.end === "silence" ? ["handshake-timeout"] : ["client-closed", "client-error"],
      };
      expect(allowed[c.expect], `reason ${info.reason}: ${where}`).to.include(info.reason);
      return;
    }
    expect(got, `never dialed (${info.reason}): ${where}`).to.not.equal(undefined);
    await waitFor(() => got!.data.length >= c.rest.length, 3000, `bytes of ${where}`);
    expect(got!.data.equals(c.rest), `bytes differ: ${where}`).to.equal(true);
    expect(info.reason, where).to.equal(c.end === "fin" ? "done" : "idle-timeout");
  }

  it(`holds over ${CASES} seeded cases from ${BASE_SEED}`, async () => {
    const cases = Array.from({ length: CASES }, (_, i) => generate((BASE_SEED + i) >>> 0));
    await forEachConcurrently(cases, CONCURRENCY, run);
    await expectNoActiveConnections(started.proxy, 5000);
    expect(uncaught).to.deep.equal([]);
    // the oracle reached every outcome in the default list
    if (CASES >= 96) expect(new Set(cases.map((c) => c.expect)).size).to.be.at.least(4);
  });
});
