import { getHeaders, type HeaderPairs } from "@switchyard/core";

/** The hop-by-hop fields of RFC 9110 §7.6.1 (plus the legacy Proxy-Connection), lower-cased. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** HOP_LENGTH[n] is true when some hop-by-hop name has n characters. */
const HOP_LENGTH: readonly boolean[] = (() => {
  const a: boolean[] = new Array<boolean>(32).fill(false);
  for (const n of HOP_BY_HOP) a[n.length] = true;
  return a;
})();

/**
 * Fields a `Connection` token may never remove: without them the message cannot be framed or
 * routed (`Connection: host` or `Connection: content-length` is an attack, not a hop-by-hop
 * declaration).
 */
export const PROTECTED: ReadonlySet<string> = new Set(["host", "content-length"]);

export interface StripOptions {
  /**
   * Keep `Upgrade` and answer with `Connection: upgrade`: for a tunnel request (WebSocket) or
   * a 101 Switching Protocols response.
   */
  tunnel?: boolean;
}

/** The set of names to remove from `headers`: the hop-by-hop set plus every Connection token. */
export function hopByHopNames(headers: HeaderPairs): Set<string> {
  const names = new Set(HOP_BY_HOP);
  for (const value of getHeaders(headers, "connection")) {
    for (const raw of value.split(",")) {
      const token = raw.trim().toLowerCase();
      if (token && !PROTECTED.has(token)) names.add(token);
    }
  }
  return names;
}

/** Connection tokens (lower-cased, protected names left out), or undefined when there are none. */
function connectionTokens(headers: HeaderPairs): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i]!;
    if (pair[0].length !== 10 || pair[0].toLowerCase() !== "connection") continue;
    for (const raw of pair[1].split(",")) {
      const token = raw.trim().toLowerCase();
      if (token && !PROTECTED.has(token) && !HOP_BY_HOP.has(token)) (out ??= new Set()).add(token);
    }
  }
  return out;
}

/**
 * Removes hop-by-hop fields in place and returns the names removed (lower-cased, in order of
 * first appearance). With `tunnel`, the `Upgrade` field is kept and `Connection: upgrade` is
 * written back so the next hop sees a valid upgrade request or 101 response.
 * One pass, no copy of the hop-by-hop set: it runs on every message.
 */
export function stripHopByHop(headers: HeaderPairs, options: StripOptions = {}): string[] {
  const extra = connectionTokens(headers);
  let tunnel = false;
  if (options.tunnel === true) {
    for (let i = 0; i < headers.length && !tunnel; i++) tunnel = headers[i]![0].length === 7 && headers[i]![0].toLowerCase() === "upgrade";
  }
  let removed: string[] | undefined;
  let w = 0;
  for (let r = 0; r < headers.length; r++) {
    const pair = headers[r]!;
    const name = pair[0];
    // only these lengths can be a hop-by-hop name: skip the lower-casing for the rest
    if (extra === undefined && !HOP_LENGTH[name.length]) {
      headers[w++] = pair;
      continue;
    }
    const lower = name.toLowerCase();
    if ((HOP_BY_HOP.has(lower) && !(tunnel && lower === "upgrade")) || (extra !== undefined && extra.has(lower))) {
      if (removed === undefined) removed = [lower];
      else if (!removed.includes(lower)) removed.push(lower);
      continue;
    }
    headers[w++] = pair;
  }
  headers.length = w;
  if (tunnel) headers.push(["Connection", "upgrade"]);
  return removed ?? [];
}
