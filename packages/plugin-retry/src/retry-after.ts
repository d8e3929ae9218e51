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
  const at = parseHttpDate(v, now);
  return at === undefined ? undefined : Math.max(0, at - now);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MON = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";
/** "Sun, 06 Nov 1994 08:49:37 GMT" */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MON} (\\d{4}) ${TIME} GMT$`);
/** "Sunday, 06-Nov-94 08:49:37 GMT" (obsolete) */
const RFC850 = new RegExp(`^${LONG_DAY}, (\\d{2})-${MON}-(\\d{2}) ${TIME} GMT$`);
/** "Sun Nov  6 08:49:37 1994" (obsolete, UTC) */
const ASCTIME = new RegExp(`^${DAY} ${MON} ([ \\d]\\d) ${TIME} (\\d{4})$`);

interface DateParts {
  day: number;
  month: string;
  year: number;
  h: number;
  m: number;
  s: number;
}

function partsOf(v: string, now: number): DateParts | undefined {
  let m = IMF_FIXDATE.exec(v);
  if (m !== null) return { day: +m[1]!, month: m[2]!, year: +m[3]!, h: +m[4]!, m: +m[5]!, s: +m[6]! };
  if ((m = RFC850.exec(v)) !== null) {
    // two-digit year: the most recent year with those digits that is not over 50 years ahead
    const thisYear = new Date(now).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + +m[3]!;
    if (year > thisYear + 50) year -= 100;
    return { day: +m[1]!, month: m[2]!, year, h: +m[4]!, m: +m[5]!, s: +m[6]! };
  }
  if ((m = ASCTIME.exec(v)) !== null) return { day: +m[2]!.trim(), month: m[1]!, year: +m[6]!, h: +m[3]!, m: +m[4]!, s: +m[5]! };
  return undefined;
}

/**
 * An HTTP-date (RFC 9110 §5.6.7) in ms since the epoch, or undefined. Only its three forms are
 * accepted, all read as UTC: Date.parse would take garbage ("Nov 2" is a date in 2001) and read
 * asctime in the local time zone.
 */
function parseHttpDate(v: string, now: number): number | undefined {
  const p = partsOf(v, now);
  if (p === undefined || p.h > 23 || p.m > 59 || p.s > 60) return undefined;
  const at = Date.UTC(p.year, MONTHS.indexOf(p.month), p.day, p.h, p.m, p.s);
  // a day Date.UTC would roll over into the next month (31 Feb)
  return new Date(at).getUTCDate() === p.day ? at : undefined;
}

/** The wait a Retry-After asks for, capped at `maxMs`; undefined when absent or invalid. */
export function retryAfterDelay(value: string | undefined, maxMs: number, now: number = Date.now()): number | undefined {
  const ms = parseRetryAfter(value, now);
  return ms === undefined ? undefined : Math.min(ms, maxMs);
}
