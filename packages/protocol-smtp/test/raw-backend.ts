/**
 * A small scripted SMTP server for what smtp-server does not do or hides: CHUNKING/BDAT,
 * XCLIENT/XFORWARD with the exact bytes seen, a chosen greeting. It records every command line
 * and every message exactly as received (DATA with dot-stuffing, BDAT chunks concatenated).
 */
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

export interface RawBackendOptions {
  /** EHLO keywords after the first line (default PIPELINING, CHUNKING, 8BITMIME) */
  caps?: string[];
  /** first reply (default "220 raw.test ESMTP") */
  greeting?: string;
  /**
   * end DATA at any of the smuggling variants (`<LF>.<LF>`, `<CR>.<CR>`, …) as vulnerable servers
   * did, so a proxy that let one through would show the smuggled commands in `sessions`
   */
  lenientEnd?: boolean;
  /** answer this command verb with bytes that are not an SMTP reply */
  garbageOn?: string;
}

export interface RawBackend {
  port: number;
  /** every command line, per session */
  sessions: string[][];
  /** message bytes as received (DATA: up to and without the terminator line; BDAT: chunks) */
  messages: Buffer[];
  /** destroys every open session (the server keeps listening) */
  kick(): void;
  close(): Promise<void>;
}

export async function startRawBackend(o: RawBackendOptions = {}): Promise<RawBackend> {
  const caps = o.caps ?? ["PIPELINING", "CHUNKING", "8BITMIME"];
  const sessions: string[][] = [];
  const messages: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    const lines: string[] = [];
    sessions.push(lines);
    let buf = Buffer.alloc(0);
    let mode: { kind: "cmd" } | { kind: "data" } | { kind: "bdat"; left: number; last: boolean } = { kind: "cmd" };
    let bdat: Buffer[] = [];
    const greet = o.greeting ?? "220 raw.test ESMTP";
    s.write(`${greet}\r\n`);
    if (greet.startsWith("421")) return void s.end();
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (mode.kind === "data") {
          const text = buf.toString("latin1");
          const m = o.lenientEnd ? /(\r\n|\n|\r)\.(\r\n|\n|\r)/.exec(text) : /\r\n\.\r\n/.exec(text);
          if (m === null) return;
          const end = m.index;
          messages.push(buf.subarray(0, end + (o.lenientEnd ? m[1]!.length : 2)));
          buf = buf.subarray(end + m[0].length);
          mode = { kind: "cmd" };
          s.write("250 2.0.0 queued\r\n");
          continue;
        }
        if (mode.kind === "bdat") {
          const take = Math.min(mode.left, buf.length);
          bdat.push(buf.subarray(0, take));
          buf = buf.subarray(take);
          mode.left -= take;
          if (mode.left > 0) return;
          if (mode.last) {
            messages.push(Buffer.concat(bdat));
            bdat = [];
          }
          s.write(mode.last ? "250 2.0.0 queued\r\n" : "250 2.0.0 chunk ok\r\n");
          mode = { kind: "cmd" };
          continue;
        }
        const lf = buf.indexOf("\n");
        if (lf < 0) return;
        const line = buf.subarray(0, lf).toString("latin1").replace(/\r$/, "");
        buf = buf.subarray(lf + 1);
        lines.push(line);
        const verb = line.split(" ")[0]!.toUpperCase();
        if (verb === o.garbageOn) s.write("HTTP/1.1 400 Bad Request\r\n\r\n");
        else if (verb === "EHLO") s.write(["raw.test", ...caps].map((c, i, all) => `250${i === all.length - 1 ? " " : "-"}${c}\r\n`).join(""));
        else if (verb === "HELO") s.write("250 raw.test\r\n");
        else if (verb === "XCLIENT") s.write(`${greet}\r\n`);
        else if (verb === "DATA") {
          mode = { kind: "data" };
          s.write("354 go\r\n");
        } else if (verb === "BDAT") {
          const [, n, last] = line.split(" ");
          mode = { kind: "bdat", left: Number(n), last: (last ?? "").toUpperCase() === "LAST" };
        } else if (verb === "QUIT") {
          s.end("221 2.0.0 bye\r\n");
          return;
        } else s.write("250 2.0.0 ok\r\n");
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    sessions,
    messages,
    kick() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
