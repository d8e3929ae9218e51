/**
 * What the client sends, read on demand by the session: command lines (bounded, see
 * command-reader.ts) and raw bytes for DATA and BDAT, each wait bounded by a deadline. Reading
 * pauses the socket while a pipelined batch larger than HIGH_WATER is waiting to be processed.
 */
import type { Socket } from "node:net";
import type { Connection } from "@switchyard/core";
import { CommandLineReader, type LineEvent } from "./command-reader.js";
import { SmtpTimer } from "./timers.js";

const HIGH_WATER = 64 * 1024;

/** Why a wait ended without input. */
export type InputEnd = "timeout" | "closed" | "interrupted";

export class ClientInput {
  readonly #reader = new CommandLineReader();
  readonly #conn: Connection;
  #socket: Socket | undefined;
  #wake: ((why: "data" | InputEnd) => void) | undefined;
  #ended = false;
  #closed = false;

  constructor(conn: Connection) {
    this.#conn = conn;
    conn.onDestroy(() => {
      this.#closed = true;
      this.#notify("closed");
    });
  }

  /** Reads from `socket` (the accepted socket, or the TLS socket after STARTTLS). */
  attach(socket: Socket): void {
    this.#socket = socket;
    this.#ended = false;
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.resume();
  }

  /** Stops reading (before a TLS upgrade); bytes already read stay buffered. */
  detach(): void {
    const s = this.#socket;
    if (s === undefined) return;
    s.pause();
    s.off("data", this.#onData);
    s.off("end", this.#onEnd);
    this.#socket = undefined;
  }

  /** Drops every buffered byte (plaintext pipelined after STARTTLS: CVE-2011-0411). */
  discard(): void {
    this.#reader.clear();
  }

  /** Puts back bytes a DATA or BDAT reader did not consume. */
  unread(chunk: Buffer | undefined): void {
    if (chunk !== undefined) this.#reader.unshift(chunk);
  }

  /** bytes read but not yet processed */
  get buffered(): number {
    return this.#reader.buffered;
  }

  /** Ends the current wait with "interrupted" (graceful shutdown while idle). */
  interrupt(): void {
    this.#notify("interrupted");
  }

  /** The next command line (`limit` octets with CRLF), or why none came within `timeoutMs`. */
  async line(limit: number, timeoutMs: number): Promise<LineEvent | InputEnd> {
    for (;;) {
      const ev = this.#reader.readLine(limit);
      if (ev !== undefined) {
        this.#maybeResume();
        return ev;
      }
      this.#maybeResume();
      const why = await this.#wait(timeoutMs);
      if (why !== "data") return why;
    }
  }

  /** The buffered bytes, or the next chunk, or why none came within `timeoutMs`. */
  async bytes(timeoutMs: number): Promise<Buffer | InputEnd> {
    for (;;) {
      if (this.#reader.buffered > 0) {
        const b = this.#reader.take();
        this.#maybeResume();
        return b;
      }
      this.#maybeResume();
      const why = await this.#wait(timeoutMs);
      if (why !== "data") return why;
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#reader.push(chunk);
    if (this.#reader.buffered >= HIGH_WATER) this.#socket?.pause();
    this.#notify("data");
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#notify("closed");
  };

  #maybeResume(): void {
    if (this.#reader.buffered < HIGH_WATER && this.#socket?.isPaused()) this.#socket.resume();
  }

  #notify(why: "data" | InputEnd): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.(why);
  }

  #wait(timeoutMs: number): Promise<"data" | InputEnd> {
    if (this.#closed || this.#ended) return Promise.resolve("closed");
    return new Promise((resolve) => {
      this.#wake = (why) => {
        this.#conn.clearTimer(SmtpTimer.READ);
        resolve(why);
      };
      this.#conn.timer(SmtpTimer.READ, timeoutMs, () => this.#notify("timeout"));
    });
  }
}
