import type { Socket } from "node:net";

/** The peer closed (or the connection was destroyed) before the bytes asked for arrived. */
export class ReadClosedError extends Error {
  override name = "ReadClosedError";
}

/**
 * Reads exact byte counts from a socket during a handshake. What arrives while nobody waits is
 * kept, up to `highWater` bytes: past that the socket is paused until a read takes bytes, so a
 * peer that floods during a handshake costs at most `highWater` plus one read.
 * `detach()` hands back what was read but not taken and leaves the socket paused, for the next
 * owner (TLS upgrade, relay).
 */
export class SocketReader {
  readonly #socket: Socket;
  readonly #highWater: number;
  #chunks: Buffer[] = [];
  #size = 0;
  #ended = false;
  #detached = false;
  #wake: (() => void) | undefined;

  constructor(socket: Socket, highWater = 64 * 1024) {
    this.#socket = socket;
    this.#highWater = highWater;
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
    socket.resume();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size >= this.#highWater && this.#wake === undefined) this.#socket.pause();
    this.#notify();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#notify();
  };

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** bytes read and not yet taken */
  get buffered(): number {
    return this.#size;
  }

  /** the peer sent its FIN (or the socket closed) */
  get ended(): boolean {
    return this.#ended;
  }

  /** Waits until at least `n` bytes are buffered; rejects with ReadClosedError if they never come. */
  async #fill(n: number): Promise<void> {
    while (this.#size < n) {
      if (this.#ended || this.#detached) throw new ReadClosedError("peer closed during the handshake");
      if (this.#socket.isPaused()) this.#socket.resume();
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** The next `n` bytes, without taking them. */
  async peek(n: number): Promise<Buffer> {
    await this.#fill(n);
    const all = this.#flatten();
    return all.subarray(0, n);
  }

  /** Takes the next `n` bytes. */
  async read(n: number): Promise<Buffer> {
    await this.#fill(n);
    const all = this.#flatten();
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    return out;
  }

  #flatten(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#size)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** Wakes a pending read with ReadClosedError (the connection is going away). */
  abort(): void {
    this.#ended = true;
    this.#notify();
  }

  /** Stops reading: removes its listeners, pauses the socket, returns the bytes not taken. */
  detach(): Buffer {
    if (!this.#detached) {
      this.#detached = true;
      this.#socket.off("data", this.#onData);
      this.#socket.off("end", this.#onEnd);
      this.#socket.off("close", this.#onEnd);
      this.#socket.pause();
      this.#notify();
    }
    const rest = this.#chunks.length === 0 ? Buffer.alloc(0) : this.#flatten();
    this.#chunks = [];
    this.#size = 0;
    return rest;
  }
}
