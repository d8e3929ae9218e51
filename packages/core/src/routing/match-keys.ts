/**
 * Match keys: the fields of a routing key a route may match on, each with how it is compared.
 * Core knows `host` and `sni` (host globs) and `clientIp` (IPs and CIDRs), the fields its own
 * listeners fill; a protocol package registers its own (`database`, `user`, `ehlo`, …) with
 * `proxy.registerMatchKey(name, kind)` or `ProtocolHandler.matchKeys`. The route table compiles
 * `match` fields by their kind, and the resolver cache builds its key from them. `path` and
 * `method` (HTTP's) have matchers of their own in the route table.
 */
import { ConfigError } from "../errors.js";

/**
 * How a match key compares:
 * - `"glob"`: case-sensitive glob (`orders_*`);
 * - `"host-glob"`: case-insensitive host glob by labels (`*.example.com`, `**.example.com`; a port
 *   and a trailing dot are ignored);
 * - `"cidr"`: IP addresses and CIDR ranges (`10.0.0.0/8`, `::1`);
 * - `"glob-any"`: the key holds several values, one per line (a certificate's SANs): matches when
 *   any of them matches a case-sensitive glob.
 */
export type MatchKeyKind = "glob" | "host-glob" | "cidr" | "glob-any";

const KINDS: readonly MatchKeyKind[] = ["glob", "host-glob", "cidr", "glob-any"];

/** Route-table fields with matchers of their own (not registrable). */
const RESERVED: ReadonlySet<string> = new Set(["path", "method", "listener", "protocol"]);

/** What the route table and the resolver cache read: the kind of a field, if it is registered. */
export interface MatchKeyLookup {
  kindOf(name: string): MatchKeyKind | undefined;
}

/** The keys every proxy knows. */
export const CORE_MATCH_KEYS: MatchKeyLookup = Object.freeze({
  kindOf: (name: string): MatchKeyKind | undefined =>
    name === "host" || name === "sni" ? "host-glob" : name === "clientIp" ? "cidr" : name === "clientSubject" ? "glob" : name === "clientSan" ? "glob-any" : undefined,
});

/** The match keys of one proxy: core's, then those protocols registered. */
export class MatchKeys implements MatchKeyLookup {
  readonly #kinds = new Map<string, { kind: MatchKeyKind; by: string }>([
    ["host", { kind: "host-glob", by: "core" }],
    ["sni", { kind: "host-glob", by: "core" }],
    ["clientIp", { kind: "cidr", by: "core" }],
    // a verified client certificate's RFC 4514 subject and SANs (client-identity.ts)
    ["clientSubject", { kind: "glob", by: "core" }],
    ["clientSan", { kind: "glob-any", by: "core" }],
  ]);

  /**
   * Registers `name` with its kind. Registering a key again with the same kind is fine (two
   * protocols that both route by `user`); another kind throws `ConfigError`.
   */
  register(name: string, kind: MatchKeyKind, by: string): void {
    if (typeof name !== "string" || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
      throw new ConfigError(`${by}: match key name ${JSON.stringify(name)} must be an identifier`);
    }
    if (RESERVED.has(name)) throw new ConfigError(`${by}: match key "${name}" is reserved`);
    if (!KINDS.includes(kind)) {
      throw new ConfigError(`${by}: match key "${name}": kind must be ${KINDS.map((k) => `"${k}"`).join(", ")}, got ${JSON.stringify(kind)}`);
    }
    const known = this.#kinds.get(name);
    if (known !== undefined && known.kind !== kind) {
      throw new ConfigError(`${by}: match key "${name}" is already registered as "${known.kind}" by ${known.by}`);
    }
    if (known === undefined) this.#kinds.set(name, { kind, by });
  }

  kindOf(name: string): MatchKeyKind | undefined {
    return this.#kinds.get(name)?.kind;
  }

  /** every registered key with its kind */
  entries(): Array<[string, MatchKeyKind]> {
    return [...this.#kinds].map(([name, { kind }]) => [name, kind]);
  }
}
