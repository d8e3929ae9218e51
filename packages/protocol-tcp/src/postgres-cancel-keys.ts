import { randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import type { Target } from "@switchyard/core";

/** Where a cancel for one session must go: the backend it runs on and that backend's key. */
export interface BackendKey {
  readonly target: Target;
  /** the target came from a dynamic resolver (the SSRF guard applies to the cancel's dial) */
  readonly dynamic: boolean;
  readonly pid: number;
  readonly secret: Buffer;
}

interface Entry {
  readonly secret: Buffer;
  readonly backend: BackendKey;
}

/**
 * The cancel keys one proxy handed out. Each session that received a BackendKeyData gets a key
 * of the proxy's own (random process id, random secret of the backend's secret length) mapped
 * to the backend's; a CancelRequest on a new connection looks its key up here. A key lives as
 * long as its session: `release` runs when the connection ends, so a stale key can never cancel
 * a query of a later session.
 */
export class CancelKeys {
  readonly #byPid = new Map<number, Entry>();

  /** Issues the proxy's key for a session whose backend sent `backend`. */
  issue(backend: BackendKey): { pid: number; secret: Buffer } {
    let pid: number;
    do pid = randomInt(1, 0x7fffffff);
    while (this.#byPid.has(pid));
    const secret = randomBytes(backend.secret.length);
    this.#byPid.set(pid, { secret, backend });
    return { pid, secret };
  }

  /** The backend key behind a key the proxy issued; undefined for an unknown or wrong key. */
  lookup(pid: number, secret: Buffer): BackendKey | undefined {
    const entry = this.#byPid.get(pid);
    if (entry === undefined || entry.secret.length !== secret.length) return undefined;
    return timingSafeEqual(entry.secret, secret) ? entry.backend : undefined;
  }

  release(pid: number): void {
    this.#byPid.delete(pid);
  }

  /** keys currently issued (for diagnostics and tests) */
  get size(): number {
    return this.#byPid.size;
  }
}
