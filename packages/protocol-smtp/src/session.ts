/**
 * One client SMTP session through the proxy: greets, reads commands one at a time (a pipelined
 * batch is answered in order, once each), learns the routing key (EHLO name, first recipient's
 * domain or AUTH user), connects to the backend and introduces the client (EHLO, XCLIENT or
 * XFORWARD), then relays each command and reply, DATA and BDAT, with STARTTLS toward the client
 * terminated here. The session owns its backend link; the connection owns both sockets and every
 * timer, so `conn.destroy` releases everything.
 */
import type { Socket } from "node:net";
import {
  ResolveError,
  upgradeToTls,
  type Connection,
  type Proxy,
  type RouteKey,
  type RouteMatchResult,
  type Target,
} from "@switchyard/core";
import { BackendLink } from "./backend.js";
import { localOf, noRouteReply, smtpCodeOf, type LocalReply } from "./local-replies.js";
import { forwardAttributes, introduce, type ClientIdentity } from "./backend-handshake.js";
import { advertise, parseCapabilities } from "./capabilities.js";
import type { ClientInput } from "./client-input.js";
import { domainOf, formatPath, paramValue, parseCommand, parseHeloDomain, parsePath, type Command, type PathArgument } from "./command.js";
import { DataReader } from "./data-reader.js";
import type { SmtpHooks, SmtpSessionInfo, SmtpVerdict } from "./hooks.js";
import type { SmtpTransactionMessage } from "./message.js";
import { backendStartTlsOf, type ResolvedSmtpOptions } from "./options.js";
import { formatReply, ReplyParseError, serializeReply, type SmtpReply } from "./reply.js";
import { SmtpTimer } from "./timers.js";

/** RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
export const COMMAND_LINE_LIMIT = 512;
/** RFC 4954 §4: an AUTH line (initial response, continuation) may be up to 12288 octets. */
export const AUTH_LINE_LIMIT = 12_288;
/** Most header bytes read before onData taps run (more: the taps see what was read). */
const MAX_HEADER_BYTES = 64 * 1024;

/** Thrown where the session must end with a reply (backend gone, connect failure). */
class SessionEnd extends Error {
  readonly reply: LocalReply;
  readonly reason: "connect-failed" | "upstream-error" | "plugin-error" | "protocol-error";
  constructor(reply: LocalReply, reason: SessionEnd["reason"], cause?: unknown) {
    super(reply.text, { cause });
    this.reply = reply;
    this.reason = reason;
  }
}

interface Transaction {
  mail: PathArgument;
  /** MAIL has been sent to the backend (routeBy rcptDomain holds it until the first RCPT) */
  sent: boolean;
  recipients: string[];
  /** route of the first recipient (routeBy rcptDomain) */
  routeName: string | undefined;
  /** the backend refused the held MAIL: every RCPT gets this reply */
  mailRefused: SmtpReply | undefined;
  /** bytes sent in BDAT chunks so far */
  bdatBytes: number;
  /** onRequest has seen this transaction */
  announced: boolean;
}

export class SmtpSession {
  readonly #conn: Connection;
  readonly #proxy: Proxy;
  readonly #o: ResolvedSmtpOptions;
  readonly #hooks: SmtpHooks;
  readonly #input: ClientInput;
  #backend: BackendLink | undefined;
  /** the route chosen for the session (ehlo, authUser), kept to reconnect after an abort */
  #match: RouteMatchResult | undefined;
  #helo: string | undefined;
  #esmtp = false;
  /** EHLO/HELO seen since the greeting or the last STARTTLS */
  #greeted = false;
  #tls: boolean;
  #authUser: string | undefined;
  /** the client's AUTH lines, replayed to a new backend (authUser) */
  #authLines: string[] = [];
  #tx: Transaction | undefined;
  #errors = 0;
  #messages = 0;
  /** ends a wait for the client to read its replies (`#clientDrained`) */
  #drainWaiter: ((ok: boolean) => void) | undefined;

  constructor(conn: Connection, options: ResolvedSmtpOptions, hooks: SmtpHooks, input: ClientInput) {
    this.#conn = conn;
    this.#proxy = conn.proxy;
    this.#o = options;
    this.#hooks = hooks;
    this.#input = input;
    this.#tls = conn.socket !== conn.rawSocket;
  }

  /** Runs the session until it ends; every ending goes through `conn.destroy`. */
  async run(): Promise<void> {
    const conn = this.#conn;
    conn.onDrain(() => {
      if (this.#tx === undefined) this.#input.interrupt();
    });
    conn.onDestroy(() => this.#drainWaiter?.(false));
    this.#input.attach(conn.socket);
    this.#send(formatReply(220, undefined, `${this.#o.hostname} ESMTP`));
    // the handshake deadline ends with the greeting: command timeouts take over
    conn.clearTimer("handshake");
    try {
      for (;;) {
        if (conn.destroyed) return;
        if (conn.draining && this.#tx === undefined) {
          return this.#close({ code: 421, enhanced: "4.3.2", text: `${this.#o.hostname} Service shutting down, closing transmission channel` }, "shutdown");
        }
        if (!(await this.#clientDrained())) return;
        const ev = await this.#input.line(COMMAND_LINE_LIMIT, this.#o.commandTimeout);
        if (ev === "closed") return conn.destroy("client-closed");
        if (ev === "interrupted") continue;
        if (ev === "timeout") {
          this.#timeout();
          return;
        }
        if (ev.kind !== "line") {
          if (await this.#badLine(ev.kind)) return;
          continue;
        }
        if (await this.#dispatch(parseCommand(ev.text))) return;
      }
    } catch (err) {
      if (conn.destroyed) return;
      if (err instanceof SessionEnd) {
        this.#proxy.logger.warn("smtp session ended", { id: conn.id, error: err.message, cause: (err.cause as Error | undefined)?.message });
        return this.#close(err.reply, err.reason, err.cause);
      }
      this.#proxy.logger.warn("smtp session failed", { id: conn.id, error: (err as Error)?.message ?? String(err) });
      const plugin = (err as { code?: string }).code === "PRX_ERR_PLUGIN";
      if (plugin) this.#proxy.events.emit("pluginError", err as never);
      const backend = !plugin && (err instanceof ReplyParseError || String((err as { code?: string }).code).startsWith("PRX_ERR_UPSTREAM"));
      return this.#close(
        backend
          ? { code: 421, enhanced: "4.4.2", text: `${this.#o.hostname} Backend connection lost, closing transmission channel` }
          : { code: 421, enhanced: "4.3.0", text: `${this.#o.hostname} Local error, closing transmission channel` },
        plugin ? "plugin-error" : backend ? "upstream-error" : "protocol-error",
        err,
      );
    }
  }

  /**
   * A client that pipelines without reading its replies would have them pile up here: before the
   * next command, wait until the socket has taken what was written (within the command timeout).
   * false when the session ended meanwhile.
   */
  async #clientDrained(): Promise<boolean> {
    const socket = this.#conn.socket;
    if (!socket.writableNeedDrain) return true;
    const drained = await new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        socket.off("drain", onDrain);
        this.#conn.clearTimer(SmtpTimer.CLIENT_DRAIN);
        this.#drainWaiter = undefined;
        resolve(ok);
      };
      const onDrain = () => done(true);
      socket.on("drain", onDrain);
      this.#drainWaiter = done;
      this.#conn.timer(SmtpTimer.CLIENT_DRAIN, this.#o.commandTimeout, () => done(false));
    });
    if (!drained && !this.#conn.destroyed) this.#conn.destroy("idle-timeout");
    return drained && !this.#conn.destroyed;
  }

  /** Handles one command; true when the session has ended. */
  async #dispatch(cmd: Command): Promise<boolean> {
    switch (cmd.verb) {
      case "EHLO":
      case "HELO":
        return this.#hello(cmd);
      case "STARTTLS":
        return this.#startTls(cmd);
      case "AUTH":
        return this.#auth(cmd);
      case "MAIL":
        return this.#mail(cmd);
      case "RCPT":
        return this.#rcpt(cmd);
      case "DATA":
        return this.#data(cmd);
      case "BDAT":
        return this.#bdat(cmd);
      case "RSET":
        return this.#rset(cmd);
      case "NOOP":
        this.#reply(250, "2.0.0", "Ok");
        return false;
      case "QUIT":
        return this.#quit();
      case "VRFY":
        this.#reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
        return false;
      case "HELP":
        this.#reply(214, "2.0.0", "See RFC 5321");
        return false;
      default:
        // XCLIENT / XFORWARD from a client are never passed on: they would spoof the client's identity
        return this.#error(502, "5.5.2", "Error: command not recognized");
    }
  }

  // ---- commands ----

  async #hello(cmd: Command): Promise<boolean> {
    const domain = parseHeloDomain(cmd.args);
    if (domain === undefined) return this.#error(501, "5.5.4", `Syntax: ${cmd.verb} hostname`);
    const verb = cmd.verb as "EHLO" | "HELO";
    let name = domain;
    if (this.#hooks.onEhlo.taps.length > 0) {
      const v = await this.#ask("onEhlo", () => this.#hooks.onEhlo.promise({ session: this.#info(), verb, domain }));
      if (v?.action === "rewrite") name = v.value;
      else if (v && v.action !== "accept") return this.#verdict(v);
    }
    this.#tx = undefined;
    this.#helo = name;
    this.#esmtp = verb === "EHLO";
    if (this.#o.routeBy === "ehlo") {
      if (this.#backend === undefined) {
        const match = await this.#route({ ehlo: name.toLowerCase() }, "ehlo");
        if (match === undefined) return false;
        await this.#connect(match);
      } else {
        // a later EHLO (after STARTTLS): the backend hears it too and resets its state
        const r = await this.#backend.command(`${this.#esmtp ? "EHLO" : "HELO"} ${name}`, this.#o.replyTimeout);
        if (r.code !== 250) return this.#relay(r);
        if (this.#esmtp) this.#backend.caps = parseCapabilities(r.lines);
      }
      this.#greeted = true;
      this.#relayHello();
      return false;
    }
    // rcptDomain / authUser: the proxy answers from its own list; EHLO resets the transaction
    if (this.#backend !== undefined) {
      if (this.#o.routeBy === "rcptDomain") this.#dropBackend();
      else {
        const r = await this.#backend.command(`EHLO ${name}`, this.#o.replyTimeout);
        if (r.code !== 250) return this.#relay(r);
      }
    }
    this.#greeted = true;
    if (!this.#esmtp) this.#reply(250, "", this.#o.hostname);
    else {
      const own = new Map(this.#o.capabilities.map((c) => [c.split(" ")[0]!.toUpperCase(), c.includes(" ") ? c.slice(c.indexOf(" ") + 1) : ""]));
      this.#send(formatReply(250, undefined, advertise(own, this.#advertiseOptions())));
    }
    return false;
  }

  /** Answers EHLO/HELO with what the backend offers, adjusted. */
  #relayHello(): void {
    const b = this.#backend!;
    if (!this.#esmtp) return this.#reply(250, "", this.#o.hostname);
    this.#send(formatReply(250, undefined, advertise(b.caps, this.#advertiseOptions())));
  }

  #advertiseOptions() {
    return {
      hostname: this.#o.hostname,
      clientName: this.#helo ?? "",
      startTls: !this.#tls && this.#proxy.certificatesFor(this.#conn) !== undefined,
      maxMessageSize: this.#o.maxMessageSize,
      auth: this.#o.routeBy === "authUser" && this.#tls && this.#authUser === undefined ? "PLAIN LOGIN" : undefined,
      relayAuth: this.#o.routeBy === "ehlo",
    };
  }

  async #startTls(cmd: Command): Promise<boolean> {
    const store = this.#proxy.certificatesFor(this.#conn);
    if (store === undefined || this.#tls) return this.#error(502, "5.5.1", "Error: command not implemented");
    if (cmd.args !== "") return this.#error(501, "5.5.4", "Syntax: STARTTLS");
    if (this.#tx !== undefined) return this.#error(503, "5.5.1", "Error: MAIL transaction in progress");
    // plaintext the client pipelined after STARTTLS must never be read as commands (CVE-2011-0411)
    this.#input.discard();
    this.#input.detach();
    this.#send(formatReply(220, "2.0.0", "Ready to start TLS"));
    const socket = await upgradeToTls(this.#conn, store, { timeoutMs: this.#proxy.timeoutsFor(this.#conn).handshake });
    this.#tls = true;
    // RFC 3207 §4.2: everything learnt before is forgotten; a new EHLO is required
    this.#greeted = false;
    this.#helo = undefined;
    this.#input.attach(socket);
    return false;
  }

  async #auth(cmd: Command): Promise<boolean> {
    if (!this.#greeted) return this.#error(503, "5.5.1", "Error: send HELO/EHLO first");
    if (this.#tx !== undefined) return this.#error(503, "5.5.1", "Error: MAIL transaction in progress");
    if (this.#o.routeBy === "rcptDomain") return this.#error(502, "5.5.1", "Error: authentication not enabled");
    if (this.#o.routeBy === "ehlo") return this.#relayAuth(cmd);
    if (!this.#tls) return this.#error(530, "5.7.0", "Must issue a STARTTLS command first");
    if (this.#authUser !== undefined) return this.#error(503, "5.5.1", "Error: already authenticated");
    const [mechanism = "", initial] = cmd.args.split(" ");
    const mech = mechanism.toUpperCase();
    if (mech !== "PLAIN" && mech !== "LOGIN") return this.#error(504, "5.5.4", "Unrecognized authentication type");
    const lines = [`AUTH ${cmd.args}`];
    let user: string | undefined;
    if (mech === "PLAIN") {
      const response = initial ?? (await this.#authLine("", lines));
      if (response === undefined) return true;
      if (response === "*") return this.#error(501, "5.0.0", "Authentication aborted");
      const parts = decodeBase64(response)?.split("\0");
      if (parts?.length !== 3) return this.#error(501, "5.5.2", "Cannot decode response");
      user = parts[1];
    } else {
      const name = initial ?? (await this.#authLine("VXNlcm5hbWU6", lines));
      if (name === undefined) return true;
      if (name === "*") return this.#error(501, "5.0.0", "Authentication aborted");
      user = decodeBase64(name);
      if (user === undefined) return this.#error(501, "5.5.2", "Cannot decode response");
      const pass = await this.#authLine("UGFzc3dvcmQ6", lines);
      if (pass === undefined) return true;
      if (pass === "*") return this.#error(501, "5.0.0", "Authentication aborted");
    }
    if (user === undefined || user === "") return this.#error(501, "5.5.2", "Cannot decode response");
    const match = await this.#route({ authUser: user }, "auth");
    if (match === undefined) return false;
    this.#authLines = lines;
    await this.#connect(match);
    const reply = await this.#replayAuth();
    if (reply.code === 235) this.#authUser = user;
    else {
      // the backend decides: a refused login leaves the session unrouted, so a retry may go elsewhere
      this.#authLines = [];
      this.#dropBackend();
    }
    return this.#relay(reply);
  }

  /** Sends `334 challenge`, reads the client's answer (recorded in `lines`); undefined when the session ended. */
  async #authLine(challenge: string, lines: string[]): Promise<string | undefined> {
    this.#send(`334 ${challenge}\r\n`);
    const ev = await this.#input.line(AUTH_LINE_LIMIT, this.#o.commandTimeout);
    if (ev === "closed" || ev === "interrupted") {
      this.#conn.destroy("client-closed");
      return undefined;
    }
    if (ev === "timeout") {
      this.#timeout();
      return undefined;
    }
    if (ev.kind !== "line") return "*";
    lines.push(ev.text);
    return ev.text.trim();
  }

  /** Replays the recorded AUTH exchange to the backend; its final reply. */
  async #replayAuth(): Promise<SmtpReply> {
    const b = this.#backend!;
    const lines = this.#authLines;
    let reply = await b.command(lines[0]!, this.#o.replyTimeout);
    for (let i = 1; i < lines.length && reply.code === 334; i++) reply = await b.command(lines[i]!, this.#o.replyTimeout);
    return reply;
  }

  /** routeBy ehlo: AUTH goes to the backend, which runs the exchange through us. */
  async #relayAuth(cmd: Command): Promise<boolean> {
    const b = this.#backend;
    if (b === undefined) return this.#error(503, "5.5.1", "Error: send HELO/EHLO first");
    let reply = await b.command(`AUTH ${cmd.args}`, this.#o.replyTimeout);
    while (reply.code === 334) {
      this.#send(serializeReply(reply));
      const ev = await this.#input.line(AUTH_LINE_LIMIT, this.#o.commandTimeout);
      if (ev === "closed" || ev === "interrupted") {
        this.#conn.destroy("client-closed");
        return true;
      }
      if (ev === "timeout") return this.#timeout();
      reply = await b.command(ev.kind === "line" ? ev.text : "*", this.#o.replyTimeout);
    }
    return this.#relay(reply);
  }

  async #mail(cmd: Command): Promise<boolean> {
    if (!this.#greeted) return this.#error(503, "5.5.1", "Error: send HELO/EHLO first");
    if (this.#tx !== undefined) return this.#error(503, "5.5.1", "Error: nested MAIL command");
    if (this.#o.routeBy === "authUser" && this.#authUser === undefined) return this.#error(530, "5.7.0", "Authentication required");
    let path = parsePath(cmd.args, "FROM");
    if (path === undefined) return this.#error(501, "5.5.4", "Syntax: MAIL FROM:<address>");
    const size = Number(paramValue(path.params, "SIZE") ?? "0");
    if (this.#o.maxMessageSize > 0 && size > this.#o.maxMessageSize) {
      this.#reply(552, "5.3.4", "Message size exceeds fixed limit");
      return false;
    }
    if (this.#hooks.onMailFrom.taps.length > 0) {
      const v = await this.#ask("onMailFrom", () => this.#hooks.onMailFrom.promise({ session: this.#info(), address: path!.address, params: path!.params }));
      if (v?.action === "rewrite") path = { address: v.value, params: path.params };
      else if (v && v.action !== "accept") return this.#verdict(v);
    }
    const tx: Transaction = { mail: path, sent: false, recipients: [], routeName: undefined, mailRefused: undefined, bdatBytes: 0, announced: false };
    if (this.#o.routeBy === "rcptDomain") {
      // held until the first recipient names the backend
      this.#tx = tx;
      this.#reply(250, "2.1.0", "Ok");
      return false;
    }
    await this.#ensureBackend();
    const reply = await this.#sendMail(path);
    if (reply.code === 250) {
      tx.sent = true;
      this.#tx = tx;
    }
    return this.#relay(reply);
  }

  async #sendMail(path: PathArgument): Promise<SmtpReply> {
    const b = this.#backend!;
    if (b.xforward.length > 0) {
      const r = await b.command(`XFORWARD ${forwardAttributes(b.xforward, this.#identity()).join(" ")}`, this.#o.replyTimeout);
      if (r.code !== 250) this.#proxy.logger.warn("backend refused XFORWARD", { id: this.#conn.id, code: r.code });
    }
    return b.command(`MAIL ${formatPath("FROM", path)}`, this.#o.replyTimeout);
  }

  async #rcpt(cmd: Command): Promise<boolean> {
    const tx = this.#tx;
    if (tx === undefined) return this.#error(503, "5.5.1", "Error: need MAIL command");
    let path = parsePath(cmd.args, "TO");
    if (path === undefined || path.address === "") return this.#error(501, "5.5.4", "Syntax: RCPT TO:<address>");
    if (this.#hooks.onRcptTo.taps.length > 0) {
      const v = await this.#ask("onRcptTo", () =>
        this.#hooks.onRcptTo.promise({ session: this.#info(), mailFrom: tx.mail.address, address: path!.address, params: path!.params, recipients: tx.recipients }),
      );
      if (v?.action === "rewrite") path = { address: v.value, params: path.params };
      else if (v && v.action !== "accept") return this.#verdict(v);
    }
    if (this.#o.routeBy === "rcptDomain") {
      const domain = domainOf(path.address);
      if (domain === "") return this.#error(501, "5.1.3", "Bad recipient address syntax");
      const match = await this.#route({ rcptDomain: domain }, "rcpt");
      if (match === undefined) return false;
      if (tx.routeName !== undefined && match.route.name !== tx.routeName) {
        this.#reply(451, "4.3.0", "Recipient goes to another server: send it in another transaction");
        return false;
      }
      if (!tx.sent) {
        if (tx.mailRefused) return this.#relay(tx.mailRefused);
        if (this.#backend?.route !== match.route || this.#backend.failed) {
          this.#dropBackend();
          await this.#connect(match);
        }
        const reply = await this.#sendMail(tx.mail);
        if (reply.code !== 250) {
          tx.mailRefused = reply;
          return this.#relay(reply);
        }
        tx.sent = true;
        tx.routeName = match.route.name;
      }
    }
    const reply = await this.#backend!.command(`RCPT ${formatPath("TO", path)}`, this.#o.replyTimeout);
    if (reply.code === 250 || reply.code === 251) tx.recipients.push(path.address);
    return this.#relay(reply);
  }

  async #data(cmd: Command): Promise<boolean> {
    const tx = this.#tx;
    if (cmd.args !== "") return this.#error(501, "5.5.4", "Syntax: DATA");
    if (tx === undefined) return this.#error(503, "5.5.1", "Error: need MAIL command");
    if (tx.recipients.length === 0) return this.#error(554, "5.5.1", "Error: no valid recipients");
    const refused = await this.#announce(tx);
    if (refused) {
      await this.#abandon(tx);
      this.#reply(refused.code, refused.enhanced, refused.text);
      return false;
    }
    const b = this.#backend!;
    const inspect = this.#hooks.onData.taps.length > 0;
    if (!inspect) {
      const go = await b.command("DATA", this.#o.replyTimeout);
      if (go.code !== 354) return this.#relay(go);
      this.#send(serializeReply(go));
    } else {
      // the backend hears DATA only once the taps have seen the headers and let it go
      this.#reply(354, "", "End data with <CR><LF>.<CR><LF>");
    }
    const outcome = await this.#pumpData(b, inspect, tx);
    if (outcome === "closed") return true;
    if (outcome !== "sent") {
      await this.#abandon(tx);
      this.#reply(outcome.code, outcome.enhanced, outcome.text);
      return false;
    }
    this.#tx = undefined;
    const done = await b.reply(this.#o.dataEndTimeout);
    this.#messages++;
    return this.#relay(done);
  }

  /**
   * Moves the message from the client to the backend until the end of data. "sent": the
   * terminator went to the backend, whose reply is pending; a LocalReply: the message was refused
   * (the backend, if it had started receiving it, was dropped); "closed": the session ended.
   */
  async #pumpData(b: BackendLink, inspect: boolean, tx: Transaction): Promise<"sent" | "closed" | LocalReply> {
    const reader = new DataReader(this.#o.bareNewline);
    const max = this.#o.maxMessageSize;
    let refusal: LocalReply | undefined;
    /** header bytes held for onData taps (undefined: streaming) */
    let held: Buffer[] | undefined = inspect ? [] : undefined;
    let heldBytes = 0;
    let started = !inspect;
    for (;;) {
      const chunk = await this.#input.bytes(this.#o.dataTimeout);
      if (chunk === "closed" || chunk === "interrupted") {
        this.#conn.destroy("client-closed");
        return "closed";
      }
      if (chunk === "timeout") {
        this.#timeout();
        return "closed";
      }
      const step = reader.push(chunk);
      if (refusal === undefined && max > 0 && reader.size > max + 5) {
        refusal = { code: 552, enhanced: "5.3.4", text: "Message size exceeds fixed limit" };
        reader.abort();
      }
      if (refusal === undefined && reader.discarding) {
        refusal = {
          code: 554,
          enhanced: "5.6.0",
          text: `Message refused: bare ${reader.violation === "bare-cr" ? "<CR>" : "<LF>"} in message data (SMTP smuggling defence)`,
        };
      }
      if (refusal === undefined) {
        if (held !== undefined) {
          for (const o of step.out) held.push(o);
          for (const o of step.out) heldBytes += o.length;
          const all = Buffer.concat(held, heldBytes);
          const end = all.indexOf("\r\n\r\n");
          if (end >= 0 || heldBytes >= MAX_HEADER_BYTES || step.done) {
            const cut = end >= 0 ? end + 2 : Math.min(all.length, MAX_HEADER_BYTES);
            const v = await this.#ask("onData", () =>
              this.#hooks.onData.promise({ session: this.#info(), mailFrom: tx.mail.address, recipients: tx.recipients, headers: all.subarray(0, cut).toString("latin1") }),
            );
            let out = all;
            if (v?.action === "rewrite") out = Buffer.concat([Buffer.from(ensureCrlf(v.value), "latin1"), all.subarray(cut)]);
            else if (v && v.action !== "accept") {
              if (v.action === "disconnect") throw new SessionEnd(localOf(v), "protocol-error");
              refusal = localOf(v);
              reader.abort();
            }
            held = undefined;
            if (refusal === undefined) {
              const go = await b.command("DATA", this.#o.replyTimeout);
              if (go.code !== 354) {
                refusal = { code: go.code, enhanced: "", text: go.lines.join(" ") };
                reader.abort();
              } else {
                started = true;
                if (!b.write(out)) await b.drained(this.#o.dataTimeout);
              }
            }
          }
        } else {
          let ok = true;
          for (const o of step.out) ok = b.write(o);
          if (!ok) await b.drained(this.#o.dataTimeout);
        }
      } else if (started) {
        // part of the message may be at the backend: it must never be completed
        this.#dropBackend(true);
        started = false;
      }
      if (step.done) {
        this.#input.unread(step.rest);
        if (refusal === undefined) return "sent";
        this.#proxy.logger.info("smtp message refused", { id: this.#conn.id, code: refusal.code, violation: reader.violation });
        return refusal;
      }
    }
  }

  async #bdat(cmd: Command): Promise<boolean> {
    const m = /^(\d{1,15})( +LAST)? *$/i.exec(cmd.args);
    if (m === null) return this.#error(501, "5.5.4", "Syntax: BDAT size [LAST]");
    const size = Number(m[1]);
    const last = m[2] !== undefined;
    const tx = this.#tx;
    let refusal: LocalReply | undefined;
    if (tx === undefined) refusal = { code: 503, enhanced: "5.5.1", text: "Error: need MAIL command" };
    else if (tx.recipients.length === 0) refusal = { code: 554, enhanced: "5.5.1", text: "Error: no valid recipients" };
    else if (this.#o.maxMessageSize > 0 && tx.bdatBytes + size > this.#o.maxMessageSize) {
      refusal = { code: 552, enhanced: "5.3.4", text: "Message size exceeds fixed limit" };
    } else refusal = await this.#announce(tx);
    const b = this.#backend;
    if (refusal === undefined && b !== undefined) b.write(`BDAT ${size}${last ? " LAST" : ""}\r\n`);
    // the chunk is read in any case: its bytes are not commands
    let left = size;
    while (left > 0) {
      const chunk = await this.#input.bytes(this.#o.dataTimeout);
      if (chunk === "closed" || chunk === "interrupted") {
        this.#conn.destroy("client-closed");
        return true;
      }
      if (chunk === "timeout") return this.#timeout();
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
      if (chunk.length > left) this.#input.unread(chunk.subarray(left));
      left -= part.length;
      if (refusal === undefined && b !== undefined && !b.write(part)) await b.drained(this.#o.dataTimeout);
    }
    if (refusal !== undefined || tx === undefined || b === undefined) {
      if (tx !== undefined) await this.#abandon(tx);
      const r = refusal ?? { code: 503, enhanced: "5.5.1", text: "Error: need MAIL command" };
      return this.#error(r.code, r.enhanced, r.text);
    }
    tx.bdatBytes += size;
    const reply = await b.reply(last ? this.#o.dataEndTimeout : this.#o.replyTimeout);
    if (last || reply.code !== 250) this.#tx = undefined;
    if (last && reply.code === 250) this.#messages++;
    return this.#relay(reply);
  }

  /**
   * Ends a transaction the proxy refused: the backend, if it still has it open (MAIL and RCPT
   * were relayed, no message data went out), gets RSET; its reply is not the client's business.
   */
  async #abandon(tx: Transaction): Promise<void> {
    this.#tx = undefined;
    const b = this.#backend;
    if (tx.sent && b !== undefined && !b.failed) await b.command("RSET", this.#o.replyTimeout);
  }

  async #rset(cmd: Command): Promise<boolean> {
    if (cmd.args !== "") return this.#error(501, "5.5.4", "Syntax: RSET");
    const sent = this.#tx?.sent === true;
    this.#tx = undefined;
    if (sent && this.#backend !== undefined && !this.#backend.failed) return this.#relay(await this.#backend.command("RSET", this.#o.replyTimeout));
    this.#reply(250, "2.0.0", "Ok");
    return false;
  }

  async #quit(): Promise<boolean> {
    const b = this.#backend;
    this.#backend = undefined;
    if (b !== undefined && !b.failed) {
      try {
        await b.command("QUIT", Math.min(this.#o.replyTimeout, 5000));
      } catch {
        // the backend's goodbye does not matter to the client
      }
      b.destroy();
    }
    this.#close({ code: 221, enhanced: "2.0.0", text: `${this.#o.hostname} Bye` }, "done");
    return true;
  }

  // ---- routing and the backend ----

  /**
   * Resolves a routing key; on failure answers the client (554/550, or 451 per `noRoute`) and
   * returns undefined.
   */
  async #route(fields: Partial<RouteKey>, what: "ehlo" | "rcpt" | "auth"): Promise<RouteMatchResult | undefined> {
    const conn = this.#conn;
    const key: RouteKey = { listener: conn.listener.name, protocol: "smtp", clientIp: conn.clientIp, ...(this.#helo ? { ehlo: this.#helo.toLowerCase() } : {}), ...fields };
    try {
      return this.#proxy.tryResolveSync(conn, key) ?? (await this.#proxy.resolve(conn, key));
    } catch (err) {
      if (!(err instanceof ResolveError)) throw err;
      this.#proxy.logger.info("no route", { id: conn.id, listener: conn.listener.name, error: err.message });
      const r = noRouteReply(err.kind, what, this.#o.noRoute);
      this.#reply(r.code, r.enhanced, r.text);
      this.#countError();
      if (this.#errors >= this.#o.maxErrors) this.#tooManyErrors();
      return undefined;
    }
  }

  /**
   * Connects to the route's backend and introduces the client; throws SessionEnd (421) on
   * failure. The introduction (greeting, EHLO, STARTTLS, XCLIENT) runs as core's connect
   * handshake: a backend that greets with 421 (or fails any step) is a failed attempt of that
   * target, which `onUpstreamResponse` taps (plugin-retry) may retry on another target.
   */
  async #connect(match: RouteMatchResult): Promise<void> {
    const conn = this.#conn;
    let b: BackendLink | undefined;
    let refusal: unknown;
    const introduceBackend = async (socket: Socket, target: Target): Promise<void> => {
      const link = new BackendLink(conn, socket, match.route, target);
      try {
        await introduce(link, this.#identity(), { options: this.#o, tlsTimeout: this.#proxy.timeoutsFor(conn).connect, logger: this.#proxy.logger, id: conn.id });
      } catch (err) {
        link.destroy();
        refusal = err;
        throw err;
      }
      b = link;
    };
    // with backendStartTls the target's tls is started after STARTTLS, not from the first byte
    const tls = backendStartTlsOf(match.route.options) === undefined ? "first-byte" : "starttls";
    try {
      await this.#proxy.connectUpstream(conn, match, undefined, { tls, handshake: introduceBackend });
    } catch (err) {
      if ((err as { code?: string }).code === "PRX_ERR_PLUGIN") throw err;
      // the last attempt's failure: the dial, or the backend's introduction (core wraps it)
      const refused = refusal !== undefined && (err === refusal || (err as { cause?: unknown }).cause === refusal);
      const text = refused ? "backend refused the session" : "backend unreachable";
      throw new SessionEnd({ code: 421, enhanced: "4.4.1", text: `${this.#o.hostname} Service not available: ${text}, closing transmission channel` }, "connect-failed", err);
    }
    const backend = b!;
    this.#backend = backend;
    if (this.#o.routeBy !== "rcptDomain") this.#match = match;
    if (conn.state !== "established") conn.setState("established");
    backend.onLost = (err) => {
      if (this.#backend !== backend || this.#conn.destroyed) return;
      this.#proxy.logger.warn("smtp backend lost", { id: conn.id, error: err.message });
      if (this.#tx === undefined) {
        // between transactions nothing is lost: the next MAIL (or recipient) connects again
        this.#dropBackend();
        return;
      }
      this.#close({ code: 421, enhanced: "4.4.2", text: `${this.#o.hostname} Backend connection lost, closing transmission channel` }, "upstream-closed", err);
    };
  }

  /** What the backend is told about the client. */
  #identity(): ClientIdentity {
    return { ip: this.#conn.clientIp, port: this.#conn.info.clientPort, helo: this.#helo, esmtp: this.#esmtp };
  }

  /** A session whose backend was dropped reconnects to its route on the next MAIL. */
  async #ensureBackend(): Promise<void> {
    if (this.#backend !== undefined && !this.#backend.failed) return;
    const match = this.#match;
    if (match === undefined) throw new SessionEnd({ code: 421, enhanced: "4.4.2", text: `${this.#o.hostname} No backend, closing transmission channel` }, "protocol-error");
    this.#backend = undefined;
    await this.#connect(match);
    if (this.#authLines.length > 0) {
      const r = await this.#replayAuth();
      if (r.code !== 235) throw new SessionEnd({ code: 421, enhanced: "4.7.0", text: `${this.#o.hostname} Backend refused the login again, closing transmission channel` }, "upstream-error");
    }
  }

  /** Leaves the backend: QUIT (or, mid-message, an abort so the message is never completed). */
  #dropBackend(abort = false): void {
    const b = this.#backend;
    this.#backend = undefined;
    if (b === undefined) return;
    if (abort) b.destroy();
    else b.quit();
    if (this.#conn.upstream === b.socket) this.#conn.upstream = undefined;
  }

  // ---- onRequest ----

  /** Passes the transaction through core's onRequest once; a direct response refuses it. */
  async #announce(tx: Transaction): Promise<LocalReply | undefined> {
    if (tx.announced) return undefined;
    tx.announced = true;
    const proxy = this.#proxy;
    if (!proxy.hooks.onRequest.isUsed()) return undefined;
    const conn = this.#conn;
    const msg: SmtpTransactionMessage = {
      protocol: "smtp",
      connection: conn.info,
      id: `${conn.id}-${this.#messages + 1}`,
      route: conn.route,
      target: conn.target,
      response: undefined,
      meta: {},
      helo: this.#helo,
      mailFrom: tx.mail.address,
      recipients: [...tx.recipients],
      authUser: this.#authUser,
    };
    const out = await this.#withDeadline("onRequest", proxy.hooks.onRequest.promise(msg));
    const r = out?.response;
    if (r === undefined) return undefined;
    const text = r.body === undefined ? "Transaction refused" : String(r.body).replace(/[\r\n]+/g, " ");
    return smtpCodeOf(r.status, text);
  }

  // ---- replies and endings ----

  /** Runs a hook's taps within `hookTimeout`. */
  #ask(hook: string, run: () => Promise<SmtpVerdict | undefined>): Promise<SmtpVerdict | undefined> {
    return this.#withDeadline(hook, run());
  }

  #withDeadline<T>(hook: string, work: Promise<T>): Promise<T> {
    const ms = this.#o.hookTimeout;
    if (!(ms > 0)) return work;
    return new Promise<T>((resolve, reject) => {
      this.#conn.timer(SmtpTimer.HOOK, ms, () =>
        reject(new SessionEnd({ code: 421, enhanced: "4.3.0", text: `${this.#o.hostname} Local error (${hook} timed out), closing transmission channel` }, "plugin-error")),
      );
      work.then(
        (v) => {
          this.#conn.clearTimer(SmtpTimer.HOOK);
          resolve(v);
        },
        (e: unknown) => {
          this.#conn.clearTimer(SmtpTimer.HOOK);
          reject(e);
        },
      );
    });
  }

  /** Answers a tap's reject / defer / disconnect. */
  #verdict(v: SmtpVerdict): boolean {
    if (v.action === "accept" || v.action === "rewrite") return false;
    const r = localOf(v);
    if (v.action === "disconnect") {
      this.#close(r, "rejected");
      return true;
    }
    this.#reply(r.code, r.enhanced, r.text);
    return false;
  }

  #info(): SmtpSessionInfo {
    return { connection: this.#conn.info, helo: this.#helo, tls: this.#tls, authUser: this.#authUser };
  }

  #send(text: string): void {
    const s = this.#conn.socket;
    if (!s.destroyed && s.writable) s.write(text);
  }

  #reply(code: number, enhanced: string, text: string): void {
    this.#send(formatReply(code, enhanced || undefined, text));
  }

  /** Relays a backend reply as it came; a 421 from the backend ends the session. */
  #relay(reply: SmtpReply): boolean {
    this.#send(serializeReply(reply));
    if (reply.code === 421) {
      this.#dropBackend();
      this.#finish("upstream-closed");
      return true;
    }
    return false;
  }

  #countError(): void {
    this.#errors++;
  }

  /** A 5xx for a bad command; true when the error limit closed the session. */
  #error(code: number, enhanced: string, text: string): boolean {
    this.#reply(code, enhanced, text);
    this.#countError();
    if (this.#errors >= this.#o.maxErrors) {
      this.#tooManyErrors();
      return true;
    }
    return false;
  }

  #tooManyErrors(): void {
    this.#close({ code: 421, enhanced: "4.7.0", text: `${this.#o.hostname} Error: too many errors` }, "protocol-error");
  }

  async #badLine(kind: "bare-lf" | "bad-char" | "too-long"): Promise<boolean> {
    this.#proxy.logger.info("smtp bad command line", { id: this.#conn.id, kind });
    if (kind === "too-long") return this.#error(500, "5.5.2", "Error: line too long");
    if (kind === "bare-lf") return this.#error(500, "5.5.2", "Error: bare <LF> received");
    return this.#error(500, "5.5.2", "Error: bad character in command");
  }

  #timeout(): true {
    this.#close({ code: 421, enhanced: "4.4.2", text: `${this.#o.hostname} Error: timeout exceeded` }, "idle-timeout");
    return true;
  }

  /** Sends a last reply, ends the client side and the backend, then destroys the connection. */
  #close(reply: LocalReply, reason: Parameters<Connection["destroy"]>[0], error?: unknown): void {
    if (this.#conn.destroyed) return;
    this.#send(formatReply(reply.code, reply.enhanced || undefined, reply.text));
    this.#dropBackend();
    this.#finish(reason, error);
  }

  /** Ends the client socket after what was written, and destroys the connection once it closed. */
  #finish(reason: Parameters<Connection["destroy"]>[0], error?: unknown): void {
    const conn = this.#conn;
    if (conn.destroyed) return;
    this.#input.detach();
    const socket = conn.socket;
    conn.onClientClose(() => conn.destroy(reason, error));
    conn.timer(SmtpTimer.CLOSE, 2000, () => conn.destroy(reason, error));
    socket.end(() => conn.destroy(reason, error));
  }
}

function decodeBase64(s: string): string | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  return Buffer.from(s, "base64").toString("utf8");
}

/** A rewritten header section as it goes on the wire: CRLF line ends, lines starting with "." stuffed. */
function ensureCrlf(headers: string): string {
  const lines = headers.replace(/\r?\n$/, "").split(/\r?\n|\r/);
  return lines.map((l) => (l.startsWith(".") ? `.${l}` : l)).join("\r\n") + "\r\n";
}
