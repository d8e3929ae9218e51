/**
 * The embedded demo's mail backend: a minimal SMTP sink on 127.0.0.1 (no package needed, so the
 * demo runs on a fresh machine). It accepts every message, tells `onMessage` who sent it to whom
 * and how long it was, and keeps nothing. Enough SMTP for the proxy and ordinary clients (curl,
 * swaks, nodemailer): EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT; commands
 * may be pipelined. Lines and messages are bounded, and a silent session is closed.
 */
import { createServer, type Server, type Socket } from "node:net";

const NAME = "demo-mail.switchyard.test";
/** longest command line (RFC 5321 §4.5.3.1.4 allows 512; extensions add a little) */
const MAX_LINE = 2048;
/** largest message accepted */
const MAX_MESSAGE = 1024 * 1024;
const IDLE_MS = 60_000;

export interface DemoMessage {
  from: string;
  to: string[];
  bytes: number;
}

/** A mail sink server (not listening yet) and a way to end its sessions. */
export function createMailSink(onMessage: (m: DemoMessage) => void): { server: Server; closeSessions(): void } {
  const sessions = new Set<Socket>();
  const server = createServer((socket) => {
    sessions.add(socket);
    socket.on("error", () => socket.destroy()).on("close", () => sessions.delete(socket));
    socket.setTimeout(IDLE_MS, () => socket.end("421 4.4.2 idle too long\r\n"));
    serveSession(socket, onMessage);
  });
  return {
    server,
    closeSessions: () => {
      for (const s of sessions) s.destroy();
    },
  };
}

function serveSession(socket: Socket, onMessage: (m: DemoMessage) => void): void {
  let buf = "";
  let from: string | undefined;
  let to: string[] = [];
  /** in DATA: the bytes of the message so far */
  let data: number | undefined;
  const reply = (text: string): void => {
    socket.write(text + "\r\n");
  };
  const reset = () => {
    from = undefined;
    to = [];
    data = undefined;
  };

  const command = (line: string): void => {
    const verb = line.slice(0, 4).toUpperCase();
    const arg = line.slice(4).trim();
    if (verb === "EHLO") {
      reset();
      return reply(`250-${NAME}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE ${MAX_MESSAGE}`);
    }
    if (verb === "HELO") {
      reset();
      return reply(`250 ${NAME}`);
    }
    if (verb === "MAIL") {
      const m = /^FROM:\s*<([^>]*)>/i.exec(arg);
      if (m === null) return reply("501 5.5.4 syntax: MAIL FROM:<address>");
      from = m[1]!;
      to = [];
      return reply("250 2.1.0 ok");
    }
    if (verb === "RCPT") {
      const m = /^TO:\s*<([^>]+)>/i.exec(arg);
      if (from === undefined) return reply("503 5.5.1 MAIL first");
      if (m === null) return reply("501 5.5.4 syntax: RCPT TO:<address>");
      to.push(m[1]!);
      return reply("250 2.1.5 ok");
    }
    if (verb === "DATA") {
      if (from === undefined || to.length === 0) return reply("503 5.5.1 MAIL and RCPT first");
      data = 0;
      return reply("354 end with <CRLF>.<CRLF>");
    }
    if (verb === "RSET") {
      reset();
      return reply("250 2.0.0 ok");
    }
    if (verb === "NOOP") return reply("250 2.0.0 ok");
    if (verb === "QUIT") {
      socket.end(`221 2.0.0 ${NAME} closing\r\n`);
      return;
    }
    reply("502 5.5.2 command not implemented");
  };

  const dataLine = (line: string): void => {
    if (line !== ".") {
      data! += line.length + 2 - (line.startsWith(".") ? 1 : 0);
      if (data! > MAX_MESSAGE) {
        socket.end("552 5.3.4 message too big for the demo\r\n");
      }
      return;
    }
    onMessage({ from: from!, to, bytes: data! });
    reset();
    reply("250 2.0.0 accepted (and dropped: this is the demo)");
  };

  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    buf += chunk;
    let eol: number;
    while ((eol = buf.indexOf("\r\n")) !== -1 && !socket.writableEnded) {
      const line = buf.slice(0, eol);
      buf = buf.slice(eol + 2);
      if (data !== undefined) dataLine(line);
      else command(line);
    }
    if (buf.length > MAX_LINE && !socket.writableEnded) socket.end("500 5.5.6 line too long\r\n");
  });
  reply(`220 ${NAME} ESMTP switchyard demo mail sink`);
}
