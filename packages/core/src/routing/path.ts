/**
 * Path patterns for HTTP routes, compiled once.
 *
 * - Without `*` or `:`, a pattern is a PREFIX matched on segment boundaries: `/api` matches
 *   `/api`, `/api/`, `/api/x` and `/api?q=1`, but not `/apix`. A trailing slash in the pattern
 *   is ignored (`/api/` = `/api`); `/` matches every path.
 * - Otherwise it is a segment glob: `:name` (a whole segment) captures one segment into
 *   `params.name`; `*` as the last segment matches the rest (zero or more segments) and is
 *   captured as `params["*"]`; `*` elsewhere matches within one segment (`/files/*.png`).
 *   A glob without a trailing `*` matches exactly, with an optional trailing slash.
 *
 * The query string is ignored for matching and kept in `remainder`: the path after the prefix
 * (or after the glob, before its rest), always starting with "/". Matching is case-sensitive
 * and works on the raw path: params are percent-decoded, the remainder is not. Dot segments
 * ("/a/../b") are not resolved here; the protocol layer must normalise or refuse them (HTTP
 * normalises the whole target first, RFC 3986 §6.2.2). A decoded param may hold path syntax
 * ("..%2f.." decodes to "../"): never splice one into a path as is. protocol-http's `rewrite`
 * copies the `*` capture raw from `remainder` and refuses encoded slashes and dot segments.
 */
import { ConfigError } from "../errors.js";
import { wildMatch } from "./wildcard.js";

/** What a successful path match extracted. */
export interface PathMatch {
  readonly params: Readonly<Record<string, string>>;
  /** the rest of the path, starting with "/", query string included */
  readonly remainder: string;
}

/** A compiled path pattern. */
export interface PathMatcher {
  readonly pattern: string;
  readonly kind: "prefix" | "glob";
  /** specificity, 0-99 999; higher is more specific */
  readonly score: number;
  match(path: string): PathMatch | null;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** Segment of a glob pattern. */
type Segment =
  | { readonly kind: "literal"; readonly text: string }
  | { readonly kind: "param"; readonly name: string }
  | { readonly kind: "glob"; readonly text: string };

function decode(s: string): string {
  if (!s.includes("%")) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function withSlash(rest: string): string {
  return rest.charCodeAt(0) === 47 /* / */ ? rest : `/${rest}`;
}

/** `*` glob within one segment (no "/" in `s` between from and to). */
function segmentGlob(p: string, s: string, from: number, to: number): boolean {
  return wildMatch(p, s, from, to, false);
}

function compilePrefix(pattern: string): PathMatcher {
  const prefix = pattern.length > 1 && pattern.endsWith("/") ? pattern.replace(/\/+$/, "") : pattern;
  const segments = prefix === "/" ? 0 : prefix.split("/").length - 1;
  const score = Math.min(segments * 1_000 + Math.min(prefix.length, 999), 99_999);
  if (prefix === "/" || prefix === "") {
    return Object.freeze({
      pattern,
      kind: "prefix",
      score,
      match: (path: string) => (path.charCodeAt(0) === 47 ? { params: NO_PARAMS, remainder: path } : null),
    });
  }
  const n = prefix.length;
  return Object.freeze({
    pattern,
    kind: "prefix",
    score,
    match(path: string): PathMatch | null {
      if (!path.startsWith(prefix)) return null;
      const next = path.charCodeAt(n);
      if (path.length !== n && next !== 47 /* / */ && next !== 63 /* ? */) return null;
      return { params: NO_PARAMS, remainder: withSlash(path.slice(n)) };
    },
  });
}

function compileGlobPath(pattern: string): PathMatcher {
  const raw = pattern.split("/").slice(1);
  const rest = raw[raw.length - 1] === "*";
  if (rest) raw.pop();
  else if (raw.length > 1 && raw[raw.length - 1] === "") raw.pop(); // "/a/:b/" = "/a/:b"
  const names = new Set<string>();
  let score = 0;
  const segments: Segment[] = raw.map((text): Segment => {
    if (text.startsWith(":")) {
      const name = text.slice(1);
      if (!/^[A-Za-z_$][\w$-]*$/.test(name)) {
        throw new ConfigError(`path pattern "${pattern}": bad parameter name "${text}"`);
      }
      if (names.has(name)) throw new ConfigError(`path pattern "${pattern}": parameter ":${name}" repeats`);
      names.add(name);
      score += 300;
      return { kind: "param", name };
    }
    if (text.includes("*")) {
      score += 200 + text.replace(/\*/g, "").length;
      return { kind: "glob", text };
    }
    score += 1_000 + Math.min(text.length, 99);
    return { kind: "literal", text };
  });
  if (!rest) score += 500;
  score = Math.min(score, 99_999);
  const count = segments.length;
  return Object.freeze({
    pattern,
    kind: "glob",
    score,
    match(path: string): PathMatch | null {
      if (path.charCodeAt(0) !== 47) return null;
      const q = path.indexOf("?");
      const end = q < 0 ? path.length : q;
      let params: Record<string, string> | undefined;
      let pos = 1; // after the leading "/"
      for (let i = 0; i < count; i++) {
        if (pos > end) return null;
        let stop = path.indexOf("/", pos);
        if (stop < 0 || stop > end) stop = end;
        const seg = segments[i] as Segment;
        if (seg.kind === "literal") {
          if (stop - pos !== seg.text.length || !path.startsWith(seg.text, pos)) return null;
        } else if (seg.kind === "param") {
          if (stop === pos) return null;
          (params ??= {})[seg.name] = decode(path.slice(pos, stop));
        } else if (!segmentGlob(seg.text, path, pos, stop)) {
          return null;
        }
        pos = stop + 1;
      }
      const query = path.slice(end);
      if (rest) {
        const tail = pos > end ? "" : path.slice(pos, end);
        (params ??= {})["*"] = decode(tail);
        return { params, remainder: `/${tail}${query}` };
      }
      // exact: nothing may follow but one optional trailing slash
      if (pos < end) return null;
      return { params: params ?? NO_PARAMS, remainder: `/${query}` };
    },
  });
}

/** Compiles a path pattern (see the module comment). Throws `ConfigError` if it is malformed. */
export function compilePath(pattern: string): PathMatcher {
  if (typeof pattern !== "string" || !pattern.startsWith("/")) {
    throw new ConfigError(`path pattern ${JSON.stringify(pattern)} must start with "/"`);
  }
  if (pattern.includes("?")) throw new ConfigError(`path pattern "${pattern}" must not contain a query string`);
  return pattern.includes("*") || pattern.includes(":") ? compileGlobPath(pattern) : compilePrefix(pattern);
}
