/**
 * Signals that arrive before the proxy runs — while an ES module config is still loading (an async
 * default export may take seconds), or listeners are being bound — would otherwise end the process
 * with node's default action (exit 129 on SIGHUP, 143 on SIGTERM). `switchyard --config` (and the
 * demo) records them from its very start and the running proxy acts on them as soon as it runs:
 * - SIGTERM / SIGINT: closed gracefully right after start (exit 0); a second one before that exits
 *   at once (1), as during a shutdown;
 * - SIGHUP: one reload right after start, however many were sent, so the file as it is by then is
 *   what runs (the start may have read it before it was edited).
 */
export class PendingSignals {
  #stop: NodeJS.Signals | undefined;
  #hup = false;
  #active = true;
  #force: (code: number) => void = () => {};
  /** resolves with exit code 1 when a second SIGTERM/SIGINT arrives before the proxy runs */
  readonly forced = new Promise<number>((resolve) => (this.#force = resolve));
  readonly #stderr: (line: string) => void;

  constructor(stderr: (line: string) => void = (l) => void process.stderr.write(l + "\n")) {
    this.#stderr = stderr;
    process.on("SIGTERM", this.#onStop).on("SIGINT", this.#onStop).on("SIGHUP", this.#onHup);
  }

  readonly #onStop = (signal: NodeJS.Signals): void => {
    if (this.#stop) {
      this.#stderr(`switchyard: ${signal} again before the proxy started: exiting now`);
      this.#force(1);
      return;
    }
    this.#stop = signal;
  };

  readonly #onHup = (): void => {
    this.#hup = true;
  };

  /**
   * Hands over to the running proxy, which has installed its own handlers: removes these and
   * returns what arrived meanwhile. Later calls return nothing.
   */
  takeOver(): { stop: NodeJS.Signals | undefined; hup: boolean } {
    if (!this.#active) return { stop: undefined, hup: false };
    this.dispose();
    return { stop: this.#stop, hup: this.#hup };
  }

  /** Removes the handlers (idempotent). */
  dispose(): void {
    if (!this.#active) return;
    this.#active = false;
    process.off("SIGTERM", this.#onStop).off("SIGINT", this.#onStop).off("SIGHUP", this.#onHup);
  }
}
