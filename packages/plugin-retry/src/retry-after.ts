/**
 * Parses Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns the delay in ms
 * from `now` (never negative), or undefined when the value is neither.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === "") return undefined;
  if (/^\d+$/.test(v)) {
    const seconds = Number(v);
    return Number.isFinite(seconds) ? seconds * 1000 : undefined;
  }
  // HTTP-date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete RFC 850 and
  // asctime forms, which Date.parse understands. Require a weekday or a month name to reject
  // garbage that Date.parse would accept ("1", "-3").
  if (!/[A-Za-z]{3}/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** The wait a Retry-After asks for, capped at `maxMs`; undefined when absent or invalid. */
export function retryAfterDelay(value: string | undefined, maxMs: number, now: number = Date.now()): number | undefined {
  const ms = parseRetryAfter(value, now);
  return ms === undefined ? undefined : Math.min(ms, maxMs);
}
