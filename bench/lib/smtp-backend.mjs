// An smtp-server that accepts every message and discards it, its own process for the SMTP bench.
import { SMTPServer } from "smtp-server";
import { serveControl } from "./control.mjs";

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS", "AUTH"],
  size: 50 * 1024 * 1024,
  logger: false,
  onData(stream, _session, callback) {
    stream.on("end", () => callback());
    stream.resume();
  },
});
server.on("error", () => {});
server.listen(0, "127.0.0.1", () => serveControl(server.server.address().port, () => new Promise((r) => server.close(r))));
