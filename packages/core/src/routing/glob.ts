/**
 * Glob matchers for routing keys, compiled once.
 *
 * Host globs (`host`, `sni`, `ehlo` and other host-like keys), case-insensitive:
 * - `example.com` matches only `example.com` (any case, with or without port or trailing dot);
 * - `*` inside a label matches within that one label: `*.example.com` matches `a.example.com`
 *   but neither `example.com` nor `a.b.example.com`; `api-*.example.com` matches
 *   `api-v2.example.com`;
 * - a leading `**.` matches one or more labels of any depth: `**.example.com` matches
 *   `a.example.com` and `a.b.example.com`, but not `example.com` itself (list both
 *   `example.com` and `**.example.com` to take the apex too);
 * - a lone `*` (or `**`) matches anything.
 * Values are normalised before matching (see `normalizeHost`): port stripped (also from
 * `[::1]:80`), trailing dot stripped, lowercased. Patterns may not carry a port.
 *
 * Plain globs (`database`, `user`, any other key): case-sensitive, `*` matches any run of
 * characters, `?` exactly one.
 *
 * Matching is linear-time-ish (no regular expressions, no catastrophic backtracking).
 * `score` (0-99 999) orders matchers by specificity: an exact pattern beats any wildcard,
 * fewer wildcards beat more, a longer literal part beats a shorter one; a lone `*` scores 0.
 */
import { ConfigError } from "../errors.js";
import { wildMatch } from "./wildcard.js";

/** A compiled glob. */
export interface GlobMatcher {
  /** the pattern as written */
  readonly pattern: string;
  /** specificity, 0-99 999; higher is more specific */
  readonly score: number;
  match(value: string): boolean;
  /** the same function as `match`, for use as a detached predicate (`.filter(g.test)`) */
  readonly test: (value: string) => boolean;
}

const STAR = 42; // *
const QUESTION = 63; // ?


function specificity(exact: boolean, wildcards: number, literalLength: number): number {
  if (exact) return 90_000 + Math.min(literalLength, 9_999);
  return 50_000 - Math.min(wildcards, 40) * 1_000 + Math.min(literalLength, 999);
}

function matcher(pattern: string, score: number, match: (value: string) => boolean): GlobMatcher {
  return Object.freeze({ pattern, score, match, test: match });
}

const MATCH_ALL: GlobMatcher = matcher("*", 0, () => true);

/**
 * Normalises a host value for matching: strips the port (`example.com:8080`, `[::1]:80`), the
 * brackets of an IPv6 literal, one trailing dot, and lowercases. Returns the same string when
 * there is nothing to change.
 */
export function normalizeHost(host: string): string {
  let h = host;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf("]");
    if (close > 0) h = h.slice(1, close);
  } else {
    const colon = h.indexOf(":");
    // exactly one colon: host:port; several: a bare IPv6 address, kept whole
    if (colon >= 0 && h.indexOf(":", colon + 1) < 0) h = h.slice(0, colon);
  }
  if (h.length > 1 && h.charCodeAt(h.length - 1) === 46 /* . */) h = h.slice(0, -1);
  return /[A-Z]/.test(h) ? h.toLowerCase() : h;
}

/** One compiled label of a host pattern: "*" (any non-empty label), a literal, or a glob. */
type Label = { readonly kind: "any" } | { readonly kind: "literal" | "glob"; readonly text: string };

function labelMatch(label: Label, v: string, start: number, end: number): boolean {
  if (label.kind === "any") return end > start;
  if (label.kind === "literal") return end - start === label.text.length && v.startsWith(label.text, start);
  return wildMatch(label.text, v, start, end, false);
}

/** Compiles a host glob (see the module comment). Throws `ConfigError` on a malformed pattern. */
export function compileHostGlob(pattern: string): GlobMatcher {
  if (typeof pattern !== "string") throw new ConfigError(`host pattern must be a string, got ${String(pattern)}`);
  let p = pattern.trim().toLowerCase();
  if (p.startsWith("[") && p.endsWith("]")) p = p.slice(1, -1);
  if (p.length > 1 && p.endsWith(".")) p = p.slice(0, -1);
  if (p === "") throw new ConfigError("empty host pattern");
  if (p === "*" || p === "**") return matcher(pattern, 0, MATCH_ALL.match);
  const colon = p.indexOf(":");
  if (colon >= 0 && p.indexOf(":", colon + 1) < 0) {
    throw new ConfigError(`host pattern "${pattern}" must not carry a port (ports are matched by listener)`);
  }
  if (p.startsWith(".") || p.includes("..")) throw new ConfigError(`host pattern "${pattern}" has an empty label`);
  if (!p.includes("*")) {
    const exact = p;
    return matcher(pattern, specificity(true, 0, exact.length), (value) => normalizeHost(value) === exact);
  }
  const parts = p.split(".");
  const anyDepth = parts[0] === "**";
  if (anyDepth) parts.shift();
  let wildcards = anyDepth ? 2 : 0;
  let literal = 0;
  const labels: Label[] = parts.map((text) => {
    if (text === "") throw new ConfigError(`host pattern "${pattern}" has an empty label`);
    if (text.includes("**")) {
      throw new ConfigError(`host pattern "${pattern}": "**" is only allowed as the whole first label ("**.example.com")`);
    }
    let stars = 0;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === STAR) stars++;
    wildcards += stars;
    literal += text.length - stars;
    if (text === "*") return { kind: "any" } as const;
    return { kind: stars > 0 ? "glob" : "literal", text } as const;
  });
  const count = labels.length;
  return matcher(pattern, specificity(false, wildcards, literal), (value) => {
    const v = normalizeHost(value);
    let end = v.length;
    // walk value labels right to left against pattern labels
    for (let i = count - 1; i >= 0; i--) {
      const dot = end > 0 ? v.lastIndexOf(".", end - 1) : -1;
      if (!labelMatch(labels[i] as Label, v, dot + 1, end)) return false;
      if (i > 0) {
        if (dot < 0) return false;
        end = dot;
      } else {
        // pattern consumed: "**." needs at least one more label, otherwise nothing may remain
        return anyDepth ? dot > 0 : dot < 0;
      }
    }
    return false;
  });
}

/** Compiles a plain, case-sensitive glob: `*` any run of characters, `?` one character. */
export function compileGlob(pattern: string): GlobMatcher {
  if (typeof pattern !== "string") throw new ConfigError(`pattern must be a string, got ${String(pattern)}`);
  if (pattern === "*") return MATCH_ALL;
  let wildcards = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charCodeAt(i);
    if (c === STAR || c === QUESTION) wildcards++;
  }
  if (wildcards === 0) {
    return matcher(pattern, specificity(true, 0, pattern.length), (value) => value === pattern);
  }
  return matcher(pattern, specificity(false, wildcards, pattern.length - wildcards), (value) =>
    wildMatch(pattern, value, 0, value.length, true),
  );
}
