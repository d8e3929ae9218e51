/**
 * Fixtures of the SMTP tests: smtp-server backends that record what they received, a proxy with
 * SmtpProtocol, nodemailer transports, and a raw SMTP client reading replies exactly.
 */
import { once } from "node:events";
import { connect, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import nodemailer from "nodemailer";
import type { ProxyPlugin, RouteConfig, ListenerConfig } from "@switchyard/core";
import { startProxy, type StartedProxy } from "@switchyard/test-utils";
import { ReplyParser, SmtpProtocol, type SmtpReply } from "@switchyard/protocol-smtp";

export interface Received {
  from: string;
  to: string[];
  /** the message as the backend stored it (dot-stuffing removed by smtp-server) */
  data: Buffer;
  helo: string;
  user: string | undefined;
  remoteAddress: string;
  /** the backend session was TLS */
  secure: boolean;
}

export interface Backend {
  port: number;
  name: string;
  received: Received[];
  /** sessions opened on it */
  sessions: number;
  close(): Promise<void>;
}

/** An smtp-server on 127.0.0.1:0 that accepts everything and records each message. */
export async function startBackend(name: string, options: SMTPServerOptions = {}): Promise<Backend> {
  const received: Received[] = [];
  let sessions = 0;
  const server = new SMTPServer({
    name,
    logger: false,
    disabledCommands: ["STARTTLS"],
    authOptional: true,
    onConnect(_session, cb) {
      sessions++;
      cb();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        received.push({
          from: session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          helo: session.hostNameAppearsAs,
          user: session.user as string | undefined,
          remoteAddress: session.remoteAddress,
          secure: session.secure,
        });
        cb(null);
      });
    },
    ...options,
  });
  server.on("error", () => {});
  server.listen(0, "127.0.0.1");
  await once(server.server, "listening");
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    name,
    received,
    get sessions() {
      return sessions;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A proxy with SmtpProtocol and one smtp listener "mail" (options as given). */
export function startSmtpProxy(o: {
  routes: RouteConfig[];
  options?: Record<string, unknown>;
  listener?: Partial<ListenerConfig>;
  plugins?: ProxyPlugin[];
  protocol?: SmtpProtocol;
}): Promise<StartedProxy> {
  return startProxy({
    listeners: [{ name: "mail", protocol: "smtp", port: 0, ...(o.options ? { options: o.options } : {}), ...o.listener }],
    routes: o.routes,
    plugins: [o.protocol ?? new SmtpProtocol({ hostname: "proxy.test" }), ...(o.plugins ?? [])],
  });
}

/** A nodemailer transport to the proxy (no STARTTLS unless `tls` gives a CA). */
export function transport(port: number, o: { name?: string; ca?: string; auth?: { user: string; pass: string }; authMethod?: string } = {}) {
  return nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    name: o.name ?? "client.example",
    ...(o.ca ? { requireTLS: true, tls: { ca: o.ca, servername: "proxy.test" } } : { ignoreTLS: true }),
    ...(o.auth ? { auth: o.auth } : {}),
    ...(o.authMethod ? { authMethod: o.authMethod } : {}),
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 10000,
  });
}

const openClients = new Set<Socket>();

/** Destroys every raw client still open (call in afterEach, before counting connections). */
export function closeRawClients(): void {
  for (const s of openClients) s.destroy();
  openClients.clear();
}

/** A raw SMTP client: exact bytes out, replies parsed as they come. */
export class RawClient {
  socket: Socket | TLSSocket;
  readonly replies: SmtpReply[] = [];
  /** every byte received, as text */
  text = "";
  closed = false;
  #parser = new ReplyParser();
  #waiters: Array<() => void> = [];

  constructor(socket: Socket) {
    this.socket = socket;
    this.#listen(socket);
  }

  static async open(port: number): Promise<RawClient> {
    const s = connect({ port, host: "127.0.0.1" });
    s.on("error", () => {});
    openClients.add(s);
    s.on("close", () => openClients.delete(s));
    await once(s, "connect");
    return new RawClient(s);
  }

  #listen(s: Socket): void {
    s.on("data", (c: Buffer) => {
      this.text += c.toString("latin1");
      for (const r of this.#parser.push(c)) this.replies.push(r);
      this.#wake();
    });
    s.on("close", () => {
      this.closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Waits until `n` replies have arrived in total (fails on close or after `ms`). */
  async waitReplies(n: number, ms = 5000): Promise<SmtpReply[]> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n) {
      if (this.closed) throw new Error(`closed after ${this.replies.length} replies (wanted ${n}): ${JSON.stringify(this.text)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${this.replies.length} replies (wanted ${n}): ${JSON.stringify(this.text)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.replies.slice(0, n);
  }

  /** Sends a line and returns the reply to it. */
  async command(line: string): Promise<SmtpReply> {
    const n = this.replies.length + 1;
    this.send(`${line}\r\n`);
    return (await this.waitReplies(n))[n - 1]!;
  }

  async waitClosed(ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("connection still open");
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Upgrades to TLS (after a 220 to STARTTLS). */
  async startTls(ca: string): Promise<void> {
    const plain = this.socket as Socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    const t = tlsConnect({ socket: plain, ca, servername: "proxy.test" });
    t.on("error", () => {});
    await once(t, "secureConnect");
    this.socket = t;
    this.#parser = new ReplyParser();
    this.#listen(t);
  }

  close(): void {
    this.socket.destroy();
  }
}

export const codes = (rs: readonly SmtpReply[]): number[] => rs.map((r) => r.code);
