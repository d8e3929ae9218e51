/**
 * Header lists as ordered raw pairs: names keep their case, repeats are kept (Set-Cookie is
 * never folded). Lookups are case-insensitive. These helpers are the one place that edits them.
 */
export type HeaderPairs = Array<[name: string, value: string]>;

/** First value of a header, or undefined. */
export function getHeader(headers: HeaderPairs, name: string): string | undefined {
  const n = name.toLowerCase();
  for (const [k, v] of headers) if (k.length === n.length && k.toLowerCase() === n) return v;
  return undefined;
}

/** Every value of a header, in order. */
export function getHeaders(headers: HeaderPairs, name: string): string[] {
  const n = name.toLowerCase();
  const out: string[] = [];
  for (const [k, v] of headers) if (k.length === n.length && k.toLowerCase() === n) out.push(v);
  return out;
}

export function hasHeader(headers: HeaderPairs, name: string): boolean {
  return getHeader(headers, name) !== undefined;
}

/** Removes every occurrence; returns how many were removed. Edits in place. */
export function removeHeader(headers: HeaderPairs, name: string): number {
  const n = name.toLowerCase();
  let w = 0;
  for (let r = 0; r < headers.length; r++) {
    const pair = headers[r]!;
    if (pair[0].length === n.length && pair[0].toLowerCase() === n) continue;
    headers[w++] = pair;
  }
  const removed = headers.length - w;
  headers.length = w;
  return removed;
}

/** Replaces every occurrence with one value, keeping the position of the first. */
export function setHeader(headers: HeaderPairs, name: string, value: string): void {
  const n = name.toLowerCase();
  const i = headers.findIndex(([k]) => k.toLowerCase() === n);
  if (i < 0) {
    headers.push([name, value]);
    return;
  }
  headers[i] = [headers[i]![0], value];
  for (let j = headers.length - 1; j > i; j--) if (headers[j]![0].toLowerCase() === n) headers.splice(j, 1);
}

/** Adds one more occurrence at the end. */
export function appendHeader(headers: HeaderPairs, name: string, value: string): void {
  headers.push([name, value]);
}

/** Comma-separated tokens of every occurrence of a list header, trimmed and lower-cased. */
export function headerTokens(headers: HeaderPairs, name: string): string[] {
  const out: string[] = [];
  for (const v of getHeaders(headers, name)) {
    for (const t of v.split(",")) {
      const s = t.trim().toLowerCase();
      if (s) out.push(s);
    }
  }
  return out;
}
