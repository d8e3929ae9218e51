/**
 * The fuzz test's raw backend (fuzz.test.ts): parses what the proxy forwards strictly (a
 * malformed forward is a finding) and answers each request with the behaviour its path names
 * (/fz/<case>/<index> → `specs`), recording what it received and sent for the checks.
 */
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { header } from "./fuzz-check.js";
import { buildUpstream, show, type UpScript, type UpSpec } from "./fuzz-gen.js";

export interface Backend {
  port: number;
  close(): Promise<void>;
}

export const specs = new Map<string, UpSpec>();
/** request id → body the backend received (complete requests only) */
export const received = new Map<string, Buffer>();
/** request id → what the backend answered */
export const sent = new Map<string, UpScript>();
/** request id → the method the backend saw (a mutation before it may have changed it: "xHEAD") */
export const headsSeen = new Map<string, string>();
export const backendErrors: string[] = [];
/** what the cases exercised (printed with FUZZ_STATS=1) */
export const stats = new Map<string, number>();
export const count = (k: string) => stats.set(k, (stats.get(k) ?? 0) + 1);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export async function startFuzzBackend(): Promise<Backend> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: false }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buf = Buffer.alloc(0);
    let tunnel = false;
    let busy = false;
    let lastKind = "";
    let ended = false;
    let cur: { id: string | undefined; method: string; body: Buffer[]; left: number; chunked: boolean; responded: boolean; state: "size" | "data" | "crlf" | "trailers" } | undefined;
    const fail = (msg: string) => {
      backendErrors.push(`${msg}; forwarded bytes: ${show(buf, 600)}`);
      socket.destroy();
    };
    const respond = (id: string | undefined, method: string) => {
      const spec = id !== undefined ? specs.get(id) : undefined;
      if (id === undefined || spec === undefined) {
        // a target the mutations made unrecognisable: a plain answer
        socket.write("HTTP/1.1 200 OK\r\nX-Up: unknown\r\nContent-Length: 7\r\n\r\nunknown");
        return;
      }
      const script = buildUpstream(spec, method, id);
      lastKind = `${method} ${id} ${spec.kind}`;
      sent.set(id, script);
      busy = true;
      if (script.status === 101) tunnel = true;
      let i = 0;
      const step = () => {
        if (socket.destroyed) return;
        const s = script.steps[i++];
        if (s === undefined) {
          busy = false;
          return;
        }
        if ("write" in s) {
          if (s.delay > 0) setTimeout(() => (socket.destroyed ? undefined : (socket.write(s.write), step())), s.delay);
          else {
            socket.write(s.write);
            step();
          }
        } else if ("end" in s) {
          // a request may still arrive after our FIN (the proxy may have reused the socket
          // before seeing it: a stale-socket race the proxy retries); it is left unanswered
          ended = true;
          socket.end();
        } else if ("reset" in s) socket.resetAndDestroy();
        else busy = false; // hang: the response is as written; stay silent until the proxy drops the socket
      };
      step();
    };
    const parse = () => {
      for (;;) {
        if (tunnel) return;
        if (cur === undefined) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) {
            if (buf.length > 70_000) fail("forwarded head too long");
            return;
          }
          const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
          buf = buf.subarray(end + 4);
          const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]!);
          if (!m) return fail(`bad forwarded request line ${JSON.stringify(lines[0])}`);
          const hs: Array<[string, string]> = [];
          for (const l of lines.slice(1)) {
            const c = l.indexOf(":");
            const name = c < 0 ? "" : l.slice(0, c);
            const value = l.slice(c + 1).trim();
            if (!TOKEN.test(name) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return fail(`bad forwarded header line ${JSON.stringify(l)}`);
            hs.push([name, value]);
          }
          const cls = hs.filter(([k]) => k.toLowerCase() === "content-length");
          const tes = hs.filter(([k]) => k.toLowerCase() === "transfer-encoding");
          const hosts = hs.filter(([k]) => k.toLowerCase() === "host");
          if (cls.length > 1 || tes.length > 1 || (cls.length && tes.length)) return fail("forwarded request with ambiguous framing");
          if (tes.length && tes[0]![1].toLowerCase() !== "chunked") return fail("forwarded Transfer-Encoding other than chunked");
          if (cls.length && !/^\d+$/.test(cls[0]![1])) return fail("forwarded invalid Content-Length");
          if (hosts.length !== 1) return fail(`forwarded ${hosts.length} Host headers`);
          const idm = /\/fz\/(c[0-9a-z]+)\/(\d+)\?/.exec(m[2]!);
          const id = idm ? `${idm[1]}.${idm[2]}` : undefined;
          if (id !== undefined) headsSeen.set(id, m[1]!);
          if (ended) return;
          if (busy) return fail(`request ${id} forwarded while the previous response (${lastKind}) on this socket was still being written`);
          cur = { id, method: m[1]!, body: [], left: cls.length ? Number(cls[0]![1]) : 0, chunked: tes.length > 0, responded: false, state: "size" };
          if (id !== undefined && specs.get(id)?.kind === "early") {
            cur.responded = true;
            respond(id, cur.method);
          }
        }
        // body
        if (cur.chunked) {
          let done = false;
          while (!done) {
            if (cur.state === "data") {
              const n = Math.min(cur.left, buf.length);
              cur.body.push(buf.subarray(0, n));
              buf = buf.subarray(n);
              cur.left -= n;
              if (cur.left > 0) return;
              cur.state = "crlf";
            }
            if (cur.state === "crlf") {
              if (buf.length < 2) return;
              if (buf[0] !== 13 || buf[1] !== 10) return fail("forwarded chunk data not followed by CRLF");
              buf = buf.subarray(2);
              cur.state = "size";
            }
            const eol = buf.indexOf("\r\n");
            if (eol < 0) return;
            const line = buf.subarray(0, eol).toString("latin1");
            buf = buf.subarray(eol + 2);
            if (cur.state === "size") {
              const sm = /^([0-9a-fA-F]{1,15})(;.*)?$/.exec(line);
              if (!sm) return fail(`forwarded bad chunk size ${JSON.stringify(line)}`);
              cur.left = parseInt(sm[1]!, 16);
              cur.state = cur.left === 0 ? "trailers" : "data";
            } else if (line === "") done = true;
            else if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(line)) return fail(`forwarded bad trailer ${JSON.stringify(line)}`);
          }
        } else {
          const n = Math.min(cur.left, buf.length);
          if (n > 0) cur.body.push(buf.subarray(0, n));
          buf = buf.subarray(n);
          cur.left -= n;
          if (cur.left > 0) return;
        }
        const done = cur;
        cur = undefined;
        if (done.id !== undefined) received.set(done.id, Buffer.concat(done.body));
        if (!done.responded) respond(done.id, done.method);
      }
    };
    socket.on("data", (c: Buffer) => {
      if (tunnel) return;
      buf = Buffer.concat([buf, c]);
      parse();
    });
  });
  return listenLoopback(server, sockets);
}

// ---------------------------------------------------------------------------------------------
// one case

/** Listens on 127.0.0.1:0; close() destroys the tracked sockets, then closes the server. */
export async function listenLoopback(server: Server, sockets: Set<Socket>): Promise<Backend> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
