/**
 * The scripted client of the fuzz tests (fuzz.test.ts, plugin-retry's fuzz-taps): writes a case's
 * byte pieces with their delays, then waits for the close. Once `expected` final answers have
 * arrived complete and well-formed it sends its FIN; after `hangMs` without a close it gives up
 * and destroys the socket (the caller reports that).
 */
import { once } from "node:events";
import { connect } from "node:net";
import { sleep } from "@switchyard/test-utils";
import { parseResponses, type ParsedResponse } from "./fuzz-check.js";

export interface ClientScript {
  pieces: ReadonlyArray<{ bytes: Buffer; delay: number }>;
  /** after the last piece: nothing, a FIN, or a reset */
  end?: "none" | "fin" | "reset";
  /** final answers to wait for before the client's FIN */
  expected: number;
  methodOf: (finalIndex: number, r: ParsedResponse) => string | undefined;
  /** also FIN once the proxy opened a tunnel (101) */
  finOnTunnel?: boolean;
  hangMs: number;
}

export interface ClientResult {
  received: Buffer;
  /** the connection closed within hangMs of the last piece */
  closed: boolean;
}

export async function runScriptedClient(port: number, s: ClientScript): Promise<ClientResult> {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  const chunks: Buffer[] = [];
  socket.on("data", (b: Buffer) => chunks.push(b));
  let closed = false;
  const closedP = new Promise<void>((r) => socket.once("close", () => ((closed = true), r())));
  await Promise.race([once(socket, "connect").catch(() => {}), closedP]);
  for (const p of s.pieces) {
    if (p.delay > 0) await sleep(p.delay);
    if (socket.destroyed) break;
    socket.write(p.bytes);
  }
  if (s.end === "fin" && !socket.destroyed) socket.end();
  if (s.end === "reset" && !socket.destroyed) socket.resetAndDestroy();
  const sentAt = Date.now();
  let finSent = false;
  while (!closed) {
    if (Date.now() - sentAt > s.hangMs) break;
    const p = parseResponses(Buffer.concat(chunks), false, s.methodOf);
    const finals = p.responses.filter((r) => r.status >= 200 || r.status === 101);
    if (!finSent && p.settled && p.errors.length === 0 && p.tunnel === undefined && finals.length >= s.expected && finals.every((r) => r.complete)) {
      finSent = true;
      socket.end();
    }
    if (!finSent && s.finOnTunnel && p.tunnel !== undefined) {
      finSent = true;
      socket.end();
    }
    await Promise.race([sleep(10), closedP]);
  }
  if (!closed) socket.destroy();
  return { received: Buffer.concat(chunks), closed };
}
