import type { Socket } from "node:net";

/**
 * Watches an upstream socket during a protocol's backend handshake, before `relay` owns it: the
 * dialer's own handlers report to a relaying connection only, so an error or a close here would
 * otherwise go unnoticed. `onFail` is called once. The returned function removes the watch
 * (call it before handing the socket to `relay`).
 */
export function watchBackend(upstream: Socket, onFail: (err: Error) => void): () => void {
  let done = false;
  const onError = (err: Error): void => {
    if (done) return;
    done = true;
    onFail(err);
  };
  const onClose = (): void => onError(new Error("backend closed the connection during the handshake"));
  upstream.on("error", onError);
  upstream.on("close", onClose);
  return () => {
    done = true;
    upstream.off("error", onError);
    upstream.off("close", onClose);
  };
}
