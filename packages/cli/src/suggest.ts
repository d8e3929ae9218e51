/** "Did you mean" suggestions for config problems, from core's `closestName`. */
import { closestName } from "@switchyard/core";

export const quote = (xs: readonly string[]): string => xs.map((x) => `"${x}"`).join(", ");

/**
 * ` (did you mean "x"?)` when one of `known` is close to `name`, else "". Core's `closestName`
 * allows two edits; for a name of four characters or fewer that matches nearly anything
 * ("pem" → "key", "smtp" → "http"), so there only one edit or one swap of neighbours counts.
 */
export function didYouMean(name: unknown, known: Iterable<string>): string {
  if (typeof name !== "string" || name === "") return "";
  const near = closestName(name, known);
  if (near === undefined) return "";
  if (name.length <= 4 && !oneEditOrSwap(name.toLowerCase(), near.toLowerCase())) return "";
  return ` (did you mean "${near}"?)`;
}

/** `a` and `b` differ by one insertion, deletion, substitution, or swap of adjacent characters. */
function oneEditOrSwap(a: string, b: string): boolean {
  if (a === b) return true;
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  if (a.length === b.length) {
    if (a.slice(i + 1) === b.slice(i + 1)) return true; // substitution
    return a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2); // swap
  }
  return a.length < b.length ? a.slice(i) === b.slice(i + 1) : a.slice(i + 1) === b.slice(i);
}

/** `must be one of "a", "b"`, with the closest for a misspelt string value. */
export function oneOf(value: unknown, allowed: readonly string[]): string {
  return `must be one of ${quote(allowed)}${didYouMean(value, allowed)}`;
}
