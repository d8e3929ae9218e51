/**
 * Seeded cases and a scripted raw upstream for fuzz-edges.test.ts: Upgrade tunnels and
 * `Expect: 100-continue`. Each case comes from one seed (mulberry32 of fuzz-gen.ts); the
 * upstream finds a request's plan from its path (/fe/<case>/<index>, or /fa/... for the route
 * that answers 100-continue itself) and records what it received.
 */
import { createServer, type Socket } from "node:net";
import { listenLoopback } from "./fuzz-backend.js";
import { Rng } from "./fuzz-gen.js";

export type Piece = { bytes: Buffer; delay: number };

/** What the upstream does with one request. */
export type UpPlan =
  | {
      kind: "101";
      /** tunnel bytes written in the same write as the 101 head */
      extra: Buffer;
      /** the 101 head (+extra) written in pieces with small delays */
      split: boolean;
      pieces: Piece[];
      /** fin-first: FIN after its pieces (then keeps reading); after-client: waits for the client's FIN, echoes what it got, FIN; reset */
      end: "fin-first" | "after-client" | "reset";
    }
  | {
      kind: "final";
      interim: number[];
      status: number;
      body: Buffer;
      chunked: boolean;
      close: boolean;
      /** before: read the request body, then answer; no: answer at once (then read and drop the body, or close when `close`) */
      read: "before" | "no";
      delay: number;
    }
  | { kind: "hang"; interim: number[]; read: boolean };

export type ClientEnd = "fin" | "reset" | "wait-fin";

export interface EdgeCase {
  seed: number;
  id: string;
  type: "upgrade" | "expect";
  /** the first request (upgrade or expect) */
  head: Buffer;
  body: Buffer;
  chunked: boolean;
  /** wire form of the body */
  bodyWire: Buffer;
  /** expect: send the body with the head ("early"), or wait for a 100 / final answer up to waitMs */
  send: "early" | "wait";
  waitMs: number;
  /** expectContinue: "answer" route */
  answerRoute: boolean;
  /** bytes right behind the request head (upgrade: tunnel bytes, or a pipelined GET) */
  behind: Buffer;
  behindIsRequest: boolean;
  /** tunnel bytes from the client after the 101 */
  pieces: Piece[];
  clientEnd: ClientEnd;
  plan: UpPlan;
  /** plan of the follow-up GET (index 1) */
  followUp: UpPlan & { kind: "final" };
}

function pieces(r: Rng, max: number): Piece[] {
  const out: Piece[] = [];
  for (let i = r.int(0, max); i > 0; i--) out.push({ bytes: r.body(r.pick([1, 3, 50, r.int(0, 2000), r.int(0, 40_000)])), delay: r.chance(0.5) ? 0 : r.int(1, 15) });
  return out;
}

function finalPlan(r: Rng, statuses: number[], read: "before" | "no"): UpPlan & { kind: "final" } {
  return {
    kind: "final",
    interim: r.chance(0.15) ? [103] : [],
    status: r.pick(statuses),
    body: r.body(r.pick([0, 2, r.int(0, 500), r.int(0, 30_000)])),
    chunked: r.chance(0.35),
    close: r.chance(0.15),
    read,
    delay: r.chance(0.6) ? 0 : r.int(1, 40),
  };
}

export function generateEdgeCase(seed: number): EdgeCase {
  const r = new Rng(seed);
  const id = `e${seed.toString(36)}`;
  const type = r.chance(0.5) ? "upgrade" : "expect";
  const followUp = finalPlan(r, [200, 404], "before");
  followUp.close = false;
  if (type === "upgrade") {
    const tunnel = r.chance(0.65);
    const plan: UpPlan = tunnel
      ? { kind: "101", extra: r.chance(0.4) ? r.body(r.int(1, 300)) : Buffer.alloc(0), split: r.chance(0.3), pieces: pieces(r, 5), end: r.pick(["fin-first", "after-client", "after-client", "reset"] as const) }
      : finalPlan(r, [200, 400, 426, 404], "before");
    const behindKind = r.pick(["none", "none", "bytes", "request"] as const);
    // bytes behind an upgrade request the upstream then refuses would be parsed as HTTP: only a pipelined GET then
    const behindIsRequest = behindKind === "request" || (behindKind === "bytes" && !tunnel);
    const behind = behindIsRequest ? Buffer.from(`GET /fe/${id}/1 HTTP/1.1\r\nHost: fe.example\r\n\r\n`) : behindKind === "bytes" ? r.body(r.int(1, 500)) : Buffer.alloc(0);
    const head = Buffer.from(
      `GET /fe/${id}/0?q=${r.int(0, 999)} HTTP/1.1\r\nHost: fe.example\r\n${r.pick(["Connection: Upgrade", "connection: keep-alive, Upgrade", "Connection: upgrade"])}\r\nUpgrade: ${r.pick(["websocket", "WebSocket", "raw"])}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      "latin1",
    );
    return {
      seed, id, type, head, body: Buffer.alloc(0), chunked: false, bodyWire: Buffer.alloc(0), send: "early", waitMs: 0, answerRoute: false,
      behind, behindIsRequest, pieces: tunnel ? pieces(r, 5) : [], clientEnd: r.pick(["fin", "fin", "wait-fin", "reset"] as const), plan, followUp,
    };
  }
  const answerRoute = r.chance(0.3);
  const body = r.body(r.pick([0, 1, r.int(0, 300), r.int(0, 12_000)]));
  const chunked = r.chance(0.4);
  const parts: Buffer[] = [];
  if (chunked) {
    for (let off = 0; off < body.length; ) {
      const n = Math.min(body.length - off, r.int(1, 3000));
      parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(off, off + n), Buffer.from("\r\n"));
      off += n;
    }
    parts.push(Buffer.from("0\r\n\r\n"));
  } else parts.push(body);
  const p = r.next();
  const plan: UpPlan =
    p < 0.35
      ? { ...finalPlan(r, [200, 201, 500], "before"), interim: r.pick([[100], [100], [103, 100], [100, 100]]) }
      : p < 0.6
        ? finalPlan(r, [417, 401, 200, 413], "no")
        : p < 0.8
          ? finalPlan(r, [200, 204], "before") // no 100: waits for the body
          : { kind: "hang", interim: r.chance(0.5) ? [100] : [], read: r.chance(0.5) };
  if (plan.kind === "final" && plan.read === "no" && r.chance(0.3)) plan.interim = [100];
  const head = Buffer.from(
    `${r.pick(["POST", "PUT"])} /${answerRoute ? "fa" : "fe"}/${id}/0 HTTP/1.1\r\nHost: fe.example\r\n${r.pick(["Expect: 100-continue", "expect: 100-Continue"])}\r\n${chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${body.length}`}\r\n\r\n`,
    "latin1",
  );
  return {
    seed, id, type, head, body, chunked, bodyWire: Buffer.concat(parts), send: r.chance(0.35) ? "early" : "wait", waitMs: r.pick([20, 80, 200, 250, 700]), answerRoute,
    behind: Buffer.alloc(0), behindIsRequest: false, pieces: [], clientEnd: "fin", plan, followUp,
  };
}

// ---------------------------------------------------------------------------------------------
// the scripted upstream

export const plans = new Map<string, UpPlan>();
/** request id → request body as the upstream read it (complete bodies only) */
export const bodies = new Map<string, Buffer>();
/** request id → forwarded head */
export const heads = new Map<string, string>();
/** request id → what the upstream wrote (heads and bodies of all its responses, tunnel bytes) */
export const written = new Map<string, Buffer[]>();
/** request id → tunnel bytes received, and how the upstream side of the tunnel ended */
export const tunnels = new Map<string, { got: Buffer[]; end?: "fin" | "close" }>();
export const upErrors: string[] = [];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function responseBytes(p: UpPlan & { kind: "final" }, id: string, method: string): Buffer {
  const xh = `X-Up: ${id}\r\n`;
  const interim = p.interim.map((s) => `HTTP/1.1 ${s} Interim\r\n${xh}\r\n`).join("");
  const noBody = method === "HEAD" || p.status === 204;
  const conn = p.close ? "Connection: close\r\n" : "";
  if (p.chunked && !noBody) {
    const parts: Buffer[] = [Buffer.from(`${interim}HTTP/1.1 ${p.status} X\r\n${xh}${conn}Transfer-Encoding: chunked\r\n\r\n`, "latin1")];
    if (p.body.length > 0) parts.push(Buffer.from(`${p.body.length.toString(16)}\r\n`), p.body, Buffer.from("\r\n"));
    parts.push(Buffer.from("0\r\n\r\n"));
    return Buffer.concat(parts);
  }
  return Buffer.concat([Buffer.from(`${interim}HTTP/1.1 ${p.status} X\r\n${xh}${conn}${p.status === 204 ? "" : `Content-Length: ${p.body.length}\r\n`}\r\n`, "latin1"), noBody ? Buffer.alloc(0) : p.body]);
}

export async function startEdgeBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    let buf = Buffer.alloc(0);
    let ended = false;
    let wake: (() => void) | undefined;
    let tunnel: { got: Buffer[]; end?: "fin" | "close" } | undefined;
    s.on("data", (c: Buffer) => {
      if (tunnel) tunnel.got.push(c);
      else buf = Buffer.concat([buf, c]);
      wake?.();
    });
    s.on("end", () => {
      ended = true;
      if (tunnel && !tunnel.end) tunnel.end = "fin";
      wake?.();
    });
    s.on("close", () => {
      sockets.delete(s);
      ended = true;
      if (tunnel && !tunnel.end) tunnel.end = "close";
      wake?.();
    });
    const more = () => new Promise<void>((r) => (wake = r));
    const write = (id: string, b: Buffer) => {
      if (s.destroyed || s.writableEnded) return;
      written.get(id)?.push(b);
      s.write(b);
    };
    /** waits until `test` can take what it needs from buf; false when the socket ended first */
    const take = async (test: () => number): Promise<Buffer | undefined> => {
      for (;;) {
        const n = test();
        if (n >= 0) {
          const out = buf.subarray(0, n);
          buf = buf.subarray(n);
          return out;
        }
        if (ended) return undefined;
        await more();
      }
    };
    const chunkedLen = (): number => {
      let pos = 0;
      for (;;) {
        const eol = buf.indexOf("\r\n", pos);
        if (eol < 0) return -1;
        const size = parseInt(buf.subarray(pos, eol).toString("latin1"), 16);
        if (Number.isNaN(size)) return (upErrors.push(`bad forwarded chunk size ${JSON.stringify(buf.subarray(pos, eol + 2).toString("latin1"))}`), s.destroy(), -1);
        if (size === 0) {
          const end = buf.indexOf("\r\n\r\n", eol - 2 >= 0 ? eol - 2 : 0);
          return end < 0 ? -1 : end + 4;
        }
        if (buf.length < eol + 2 + size + 2) return -1;
        pos = eol + 2 + size + 2;
      }
    };
    const dechunk = (b: Buffer): Buffer => {
      const out: Buffer[] = [];
      let pos = 0;
      for (;;) {
        const eol = b.indexOf("\r\n", pos);
        const size = parseInt(b.subarray(pos, eol).toString("latin1"), 16);
        if (!(size > 0)) return Buffer.concat(out);
        out.push(b.subarray(eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
      }
    };
    void (async () => {
      for (;;) {
        const headBuf = await take(() => {
          const e = buf.indexOf("\r\n\r\n");
          return e < 0 ? -1 : e + 4;
        });
        if (headBuf === undefined) return void (buf.length > 0 && !s.destroyed ? upErrors.push(`partial forwarded head ${JSON.stringify(buf.subarray(0, 300).toString("latin1"))}`) : 0);
        const head = headBuf.toString("latin1");
        const m = /^(\S+) \/f[ea]\/(e[0-9a-z]+)\/(\d+)\S* HTTP\/1\.1\r\n/.exec(head);
        const id = m ? `${m[2]}.${m[3]}` : undefined;
        const plan = id !== undefined ? plans.get(id) : undefined;
        if (id === undefined || plan === undefined) {
          upErrors.push(`unexpected forwarded head ${JSON.stringify(head.slice(0, 300))}`);
          return void s.destroy();
        }
        heads.set(id, head);
        written.set(id, []);
        const cl = /\r\ncontent-length: *(\d+)\r\n/i.exec(head);
        const chunked = /\r\ntransfer-encoding: *chunked\r\n/i.test(head);
        const readBody = async () => {
          const b = await take(() => (chunked ? chunkedLen() : cl ? (buf.length >= +cl[1]! ? +cl[1]! : -1) : 0));
          if (b !== undefined) bodies.set(id, chunked ? dechunk(b) : b);
          return b !== undefined;
        };
        if (plan.kind === "101") {
          tunnel = { got: buf.length > 0 ? [buf] : [] };
          buf = Buffer.alloc(0);
          tunnels.set(id, tunnel);
          if (ended) tunnel.end = s.destroyed ? "close" : "fin";
          const h = Buffer.concat([Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nX-Up: ${id}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`, "latin1"), plan.extra]);
          if (plan.split) {
            for (let i = 0; i < h.length; i += 17) {
              write(id, h.subarray(i, i + 17));
              await sleep(1);
            }
          } else write(id, h);
          for (const p of plan.pieces) {
            if (p.delay) await sleep(p.delay);
            write(id, p.bytes);
          }
          if (plan.end === "reset") return void (s.destroyed ? 0 : s.resetAndDestroy());
          if (plan.end === "fin-first") return void s.end();
          while (!ended) await more();
          if (tunnel.end === "fin") write(id, Buffer.concat(tunnel.got));
          return void s.end();
        }
        for (const st of plan.interim) {
          write(id, Buffer.from(`HTTP/1.1 ${st} Interim\r\nX-Up: ${id}\r\n\r\n`, "latin1"));
          await sleep(plan.kind === "final" ? plan.delay / 2 : 5);
        }
        if (plan.kind === "hang") {
          if (plan.read) await readBody();
          while (!ended) await more();
          return;
        }
        if (plan.read === "before" && !(await readBody())) return;
        if (plan.delay) await sleep(plan.delay);
        write(id, responseBytes({ ...plan, interim: [] }, id, m![1]!)); // interims went above
        if (plan.close) return void s.end();
        if (plan.read === "no" && !(await readBody())) return;
      }
    })();
  });
  return listenLoopback(server, sockets);
}
