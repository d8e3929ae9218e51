const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 strictly: undefined for invalid bytes. Routing keys must be exactly what the
 * backend gets: a lenient decode maps different byte strings to the same U+FFFD text (and
 * re-encoding it would change what the backend sees).
 */
export function strictUtf8(bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}
