/**
 * X-Forwarded-For: the peer address is appended to an existing chain only when the peer is a
 * trusted proxy; otherwise whatever the client sent is discarded and the peer starts a new one.
 */
export function forwardedFor(existing: readonly string[], peerIp: string, peerTrusted: boolean): string {
  if (peerTrusted) {
    const chain = existing
      .flatMap((v) => v.split(","))
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (chain.length > 0) return `${chain.join(", ")}, ${peerIp}`;
  }
  return peerIp;
}

/**
 * The address the proxy should treat as the client: walks an X-Forwarded-For chain from the
 * right, skipping trusted proxies, and returns the first untrusted hop (or the leftmost one).
 */
export function clientFromChain(chain: readonly string[], peerIp: string, isTrusted: (ip: string) => boolean): string {
  if (!isTrusted(peerIp)) return peerIp;
  const hops = chain.flatMap((v) => v.split(",")).map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!isTrusted(hop)) return hop;
  }
  return hops[0] ?? peerIp;
}
