/** Request-target rewriting per route: strip a prefix, or rewrite with path params. */
import type { RouteMatchResult } from "@switchyard/core";

const TOKEN = /:([A-Za-z_][A-Za-z0-9_]*)|\*/g;

function encodePath(p: string): string {
  return p.split("/").map(encodeURIComponent).join("/");
}

/**
 * `stripPrefix: true` forwards the route's remainder ("/api" on "/api/x?q" → "/x?q");
 * a string strips that literal prefix when present; `rewrite` builds a new path from a template
 * where ":name" is a path param and "*" the glob rest; the query string is kept unless the
 * template has its own.
 */
export function rewriteUrl(url: string, m: RouteMatchResult, stripPrefix: boolean | string, rewrite: string | undefined): string {
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? "" : url.slice(q);
  if (rewrite !== undefined) {
    const params = m.params;
    const out = rewrite.replace(TOKEN, (_tok, name: string | undefined) =>
      name !== undefined ? encodeURIComponent(params[name] ?? "") : encodePath(params["*"] ?? ""),
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
