import type { HeaderPairs } from "@switchyard/core";

/**
 * The Via entry of this hop: `1.1 <pseudonym>` (RFC 9110 §7.6.3; the protocol name is omitted
 * for HTTP), with the version the message really arrived in.
 */
export function viaEntry(httpVersion: string, pseudonym: string): string {
  return `${httpVersion} ${pseudonym}`;
}

/** Appends `entry` to the last Via field (or adds one), keeping order and other fields. */
export function appendVia(headers: HeaderPairs, entry: string): void {
  for (let i = headers.length - 1; i >= 0; i--) {
    const [name, value] = headers[i]!;
    if (name.length === 3 && name.toLowerCase() === "via") {
      headers[i] = [name, value.trim() ? `${value}, ${entry}` : entry];
      return;
    }
  }
  headers.push(["Via", entry]);
}

/** Splits a Via value into entries on commas outside comments. */
export function splitVia(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === "(") depth++;
    else if (c === ")" && depth > 0) depth--;
    else if (c === "," && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((s) => s.length > 0);
}

/** The received-by part of every Via entry, lower-cased. */
export function viaReceivedBy(headers: HeaderPairs): string[] {
  const out: string[] = [];
  for (const [name, value] of headers) {
    if (name.length !== 3 || name.toLowerCase() !== "via") continue;
    for (const entry of splitVia(value)) {
      const by = entry.split(/\s+/)[1];
      if (by) out.push(by.toLowerCase());
    }
  }
  return out;
}

/** True when a Via field already names `pseudonym`: the message has been through us (a loop). */
export function viaHasLoop(headers: HeaderPairs, pseudonym: string): boolean {
  let any = false;
  for (let i = 0; i < headers.length && !any; i++) any = headers[i]![0].length === 3;
  if (!any) return false;
  return viaReceivedBy(headers).includes(pseudonym.toLowerCase());
}
