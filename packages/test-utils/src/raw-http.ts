// Raw HTTP on the wire for tests: a backend that records requests exactly as they arrived,
// and a client that sends hand-written bytes (for malformed and smuggling cases).
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/** One request as the backend saw it on the wire. */
export interface RawRequest {
  head: string;
  /** header lines as [name, value], in wire order and case */
  headers: Array<[string, string]>;
  requestLine: string;
  body: Buffer;
}

export interface RawBackend {
  port: number;
  requests: RawRequest[];
  sockets: Socket[];
  close(): Promise<void>;
}

export type RawHandler = (req: RawRequest, socket: Socket, index: number) => void;

export function parseHead(head: string): { first: string; headers: Array<[string, string]> } {
  const lines = head.split("\r\n");
  const first = lines.shift() ?? "";
  const headers = lines.filter(Boolean).map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
  });
  return { first, headers };
}

/**
 * A backend that reads raw request heads (and a Content-Length body) so tests see exactly what
 * the proxy sent, and answers with `handler`. `onConnect` runs before anything is read.
 */
export async function startRawBackend(handler: RawHandler, onConnect?: (socket: Socket) => boolean | void): Promise<RawBackend> {
  const requests: RawRequest[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    socket.on("error", () => {});
    sockets.push(socket);
    if (onConnect?.(socket) === false) return;
    let buf = Buffer.alloc(0);
    let pending: { head: string; headers: Array<[string, string]>; first: string; length: number } | undefined;
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!pending) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = buf.subarray(0, end).toString("latin1");
          buf = buf.subarray(end + 4);
          const { first, headers } = parseHead(head);
          const cl = headers.find(([k]) => k.toLowerCase() === "content-length");
          pending = { head, headers, first, length: cl ? Number(cl[1]) : 0 };
        }
        if (buf.length < pending.length) return;
        const body = buf.subarray(0, pending.length);
        buf = buf.subarray(pending.length);
        const req: RawRequest = { head: pending.head, headers: pending.headers, requestLine: pending.first, body };
        pending = undefined;
        requests.push(req);
        handler(req, socket, requests.length - 1);
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Writes a full response with Content-Length. */
export function reply(socket: Socket, status: number, headers: Array<[string, string]> = [], body = ""): void {
  const lines = [`HTTP/1.1 ${status} X`, ...headers.map(([k, v]) => `${k}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`, "", body];
  socket.write(lines.join("\r\n"));
}

export interface RawResponse {
  status: number;
  statusLine: string;
  headers: Array<[string, string]>;
  body: string;
}

/** Sends raw bytes to the proxy and reads one response (Content-Length or close-delimited). */
export async function rawRequest(port: number, text: string, opts: { keepOpen?: (s: Socket) => void } = {}): Promise<RawResponse> {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  await once(socket, "connect");
  socket.write(text);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`no full response; got ${JSON.stringify(buf.toString("latin1"))}`)), 8000);
    const tryParse = (closed: boolean) => {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return closed ? finish(new Error(`closed without a response: ${JSON.stringify(buf.toString("latin1"))}`)) : undefined;
      const { first, headers } = parseHead(buf.subarray(0, end).toString("latin1"));
      const status = Number(first.split(" ")[1]);
      const cl = headers.find(([k]) => k.toLowerCase() === "content-length");
      const rest = buf.subarray(end + 4);
      if (status === 101 || status === 204 || status === 304) return finish(undefined, { status, statusLine: first, headers, body: "" });
      if (cl) {
        if (rest.length >= Number(cl[1])) finish(undefined, { status, statusLine: first, headers, body: rest.subarray(0, Number(cl[1])).toString() });
        return;
      }
      if (headers.some(([k, v]) => k.toLowerCase() === "transfer-encoding" && /chunked/i.test(v))) {
        if (rest.includes("0\r\n\r\n")) finish(undefined, { status, statusLine: first, headers, body: dechunk(rest) });
        return;
      }
      if (closed) finish(undefined, { status, statusLine: first, headers, body: rest.toString() });
    };
    function finish(err?: Error, res?: RawResponse) {
      clearTimeout(timer);
      socket.removeAllListeners("data");
      if (opts.keepOpen && res) opts.keepOpen(socket);
      else socket.destroy();
      if (err) reject(err);
      else resolve(res!);
    }
    socket.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      tryParse(false);
    });
    socket.once("close", () => tryParse(true));
  });
}

function dechunk(b: Buffer): string {
  let out = "";
  let s = b.toString("latin1");
  for (;;) {
    const nl = s.indexOf("\r\n");
    const size = parseInt(s.slice(0, nl), 16);
    if (!size) return out;
    out += s.slice(nl + 2, nl + 2 + size);
    s = s.slice(nl + 2 + size + 2);
  }
}

export function header(headers: Array<[string, string]>, name: string): string | undefined {
  return headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}
export function headerNames(headers: Array<[string, string]>): string[] {
  return headers.map(([k]) => k.toLowerCase());
}
