/** Request-target rewriting per route: strip a prefix, or rewrite with path params. */
import type { RouteMatchResult } from "@switchyard/core";
import { HttpStatusError } from "./errors-response.js";
import type { RequestFacts } from "./head.js";
import type { ResolvedRouteOptions } from "./options.js";

const TOKEN = /:([A-Za-z_][A-Za-z0-9_]*)|\*/g;

/**
 * The request-target to forward: the request's own (`facts.url`) unless the route strips a
 * prefix or rewrites; those start from the normalised routing path. A rewrite whose capture
 * would put path syntax into the new path gives the 400 error instead (see `rewriteUrl`).
 */
export function forwardUrl(f: RequestFacts, m: RouteMatchResult, o: ResolvedRouteOptions): string | HttpStatusError {
  if (o.stripPrefix === false && o.rewrite === undefined) return f.url;
  try {
    return rewriteUrl(f.url === "*" ? f.url : f.routePath, m, o.stripPrefix, o.rewrite);
  } catch (err) {
    if (err instanceof HttpStatusError) return err;
    throw err;
  }
}

function refuse(why: string): never {
  throw new HttpStatusError(400, "PRX_ERR_HTTP_REWRITE_CAPTURE", `rewrite capture refused: ${why}`);
}

/** A dot segment, spelled plainly or percent-encoded ("." "..", "%2e", ".%2E"…). */
function dotSegment(seg: string): boolean {
  if (seg.length === 0 || seg.length > 6) return false;
  const d = seg.replace(/%2e/gi, ".");
  return d === "." || d === "..";
}

/** Encoded path syntax: a slash or a backslash (which some backends read as one), any case. */
const ENCODED_SEPARATOR = /%(?:2f|5c)/i;

/**
 * A `:name` capture in a rewrite: one path segment, decoded by the route match. It goes in
 * re-encoded; one that decodes to a dot segment, or that held an encoded slash, is refused.
 */
function paramSegment(name: string, value: string): string {
  if (value === "." || value === ".." || value.includes("/") || value.includes("\\")) refuse(`":${name}" holds path syntax`);
  return encodeURIComponent(value);
}

/**
 * The `*` capture in a rewrite, as the client sent it (never decoded into path syntax): taken
 * from the match's remainder, checked segment by segment. A dot segment or an encoded slash in
 * it is refused (`/files/..%2f..%2fadmin` must not become `/static/../../admin`).
 */
function restCapture(m: RouteMatchResult): string {
  const rem = m.remainder;
  let raw: string;
  if (rem !== undefined) {
    const q = rem.indexOf("?");
    raw = (q === -1 ? rem : rem.slice(0, q)).slice(1);
  } else {
    // a resolver's match without a remainder: only the decoded capture is known
    const decoded = m.params["*"] ?? "";
    raw = decoded.split("/").map(encodeURIComponent).join("/");
  }
  if (ENCODED_SEPARATOR.test(raw)) refuse('"*" holds an encoded slash');
  for (const seg of raw.split("/")) if (dotSegment(seg)) refuse('"*" holds a dot segment');
  return raw;
}

/**
 * `stripPrefix: true` forwards the route's remainder ("/api" on "/api/x?q" → "/x?q");
 * a string strips that literal prefix when present; `rewrite` builds a new path from a template
 * where ":name" is a path param and "*" the glob rest; the query string is kept unless the
 * template has its own. Throws `HttpStatusError` 400 for a capture that would put path syntax
 * (a dot segment, an encoded slash) into the new path.
 */
export function rewriteUrl(url: string, m: RouteMatchResult, stripPrefix: boolean | string, rewrite: string | undefined): string {
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? "" : url.slice(q);
  if (rewrite !== undefined) {
    const params = m.params;
    const out = rewrite.replace(TOKEN, (_tok, name: string | undefined) =>
      name !== undefined ? paramSegment(name, params[name] ?? "") : params["*"] === undefined ? "" : restCapture(m),
    );
    const fixed = out.charCodeAt(0) === 47 ? out : "/" + out;
    return fixed.includes("?") ? fixed : fixed + query;
  }
  if (stripPrefix === true) {
    const rem = m.remainder;
    return rem === undefined || rem === "" ? url : rem;
  }
  if (typeof stripPrefix === "string" && stripPrefix !== "" && path.startsWith(stripPrefix)) {
    const rest = path.slice(stripPrefix.length);
    if (rest !== "" && rest.charCodeAt(0) !== 47 && !stripPrefix.endsWith("/")) return url; // "/apix" is not under "/api"
    return (rest.charCodeAt(0) === 47 ? rest : "/" + rest) + query;
  }
  return url;
}
