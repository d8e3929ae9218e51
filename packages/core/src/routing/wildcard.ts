// Internal: the one wildcard matcher behind host globs, plain globs and path segments.
const STAR = 42; // *
const QUESTION = 63; // ?

/** `*` (and `?` when `question`) glob match of `p` against `s[from, to)`; O(|p|·|s|) worst case. */
export function wildMatch(p: string, s: string, from: number, to: number, question: boolean): boolean {
  let pi = 0;
  let si = from;
  let star = -1;
  let mark = 0;
  while (si < to) {
    const pc = pi < p.length ? p.charCodeAt(pi) : -1;
    if (pc === STAR) {
      star = pi++;
      mark = si;
    } else if (pc !== -1 && (pc === s.charCodeAt(si) || (question && pc === QUESTION))) {
      pi++;
      si++;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p.charCodeAt(pi) === STAR) pi++;
  return pi === p.length;
}
