import { expect } from "chai";
import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { waitFor } from "@switchyard/test-utils";
import { startBackend, startHttpProxy } from "./helpers.js";

// proxy.close() on a busy proxy: keep-alive clients send their next request as soon as the
// previous answer arrives, so at any moment some of them have a request on the wire to a
// session that looks idle. Such a request is answered (with Connection: close), never dropped.

interface Client {
  answered: number;
  /** a request was sent and neither its answer nor anything else came back before the close */
  dropped: boolean;
  /** the last answer said Connection: close */
  toldToClose: boolean;
  done: Promise<void>;
}

/** A raw keep-alive client sending GETs back to back until told to close or closed. */
async function loopingClient(port: number): Promise<Client> {
  const socket: Socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  await once(socket, "connect");
  const c: Client = { answered: 0, dropped: false, toldToClose: false, done: Promise.resolve() };
  let buf = "";
  let outstanding = false;
  const send = () => {
    outstanding = true;
    socket.write(`GET /${c.answered} HTTP/1.1\r\nHost: a\r\n\r\n`);
  };
  socket.on("data", (d: Buffer) => {
    buf += d.toString("latin1");
    for (;;) {
      const end = buf.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = buf.slice(0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
      if (buf.length < end + 4 + length) return;
      buf = buf.slice(end + 4 + length);
      outstanding = false;
      c.answered++;
      if (/\r\nconnection: *close/i.test(head)) {
        c.toldToClose = true;
        socket.end();
        return;
      }
      send();
    }
  });
  c.done = new Promise<void>((resolve) => {
    socket.once("close", () => {
      if (outstanding) c.dropped = true;
      resolve();
    });
  });
  send();
  return c;
}

describe("graceful shutdown", () => {
  it("answers every request of busy keep-alive clients while proxy.close() runs", async () => {
    const backend = await startBackend((_req, res) => res.end("ok"));
    for (let round = 0; round < 2; round++) {
      const env = await startHttpProxy([{ targets: [`127.0.0.1:${backend.port}`] }]);
      const clients = await Promise.all(Array.from({ length: 64 }, () => loopingClient(env.port)));
      await waitFor(() => clients.every((c) => c.answered >= 3), 10_000);
      const closing = env.proxy.proxy.close({ timeout: 5000 });
      await Promise.all(clients.map((c) => c.done));
      await closing;
      const dropped = clients.filter((c) => c.dropped).length;
      expect(dropped, `round ${round}: clients whose request got no answer`).to.equal(0);
      // the clients that were busy at the close were told to close by their last answer
      expect(clients.filter((c) => c.toldToClose).length).to.be.greaterThan(0);
      await env.close();
    }
  });
});
