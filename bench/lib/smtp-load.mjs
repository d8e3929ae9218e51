// SMTP load generator, its own process. argv[2]: JSON { port, conns, size, seconds }.
// Each of `conns` connections greets once (EHLO), then sends messages of `size` bytes back to back
// for `seconds` (MAIL, RCPT, DATA, body, end of data: one command at a time, each reply awaited),
// then QUIT. Reports { type: "result", messages, errors } over IPC. Bounded in time.
import net from "node:net";

const { port, conns, size, seconds } = JSON.parse(process.argv[2]);
const hardStop = setTimeout(() => {
  process.send({ type: "error", error: "smtp-load: timed out" });
  process.exit(2);
}, (seconds + 30) * 1000);
process.on("disconnect", () => process.exit(0));

const line = "x".repeat(76) + "\r\n";
const body = Buffer.from(
  "From: bench@sender.example\r\nTo: user@dest.example\r\nSubject: bench\r\n\r\n" + line.repeat(Math.max(1, Math.ceil(size / line.length))) + ".\r\n",
);

/** Reads SMTP replies from a socket: `next()` resolves with the code of the next complete reply. */
function replies(socket) {
  let buf = "";
  const done = [];
  const waiting = [];
  socket.on("data", (d) => {
    buf += d.toString("latin1");
    let nl;
    while ((nl = buf.indexOf("\r\n")) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (l[3] === "-") continue;
      const code = Number(l.slice(0, 3));
      const w = waiting.shift();
      if (w) w(code);
      else done.push(code);
    }
  });
  return () => (done.length ? Promise.resolve(done.shift()) : new Promise((r) => waiting.push(r)));
}

async function session(deadline) {
  const s = net.connect({ host: "127.0.0.1", port, noDelay: true });
  s.on("error", () => {});
  const next = replies(s);
  const closed = new Promise((r) => s.once("close", () => r(-1)));
  const reply = () => Promise.race([next(), closed]);
  let messages = 0;
  let errors = 0;
  if ((await reply()) !== 220) return { messages, errors: 1 };
  s.write("EHLO bench.example\r\n");
  if ((await reply()) !== 250) return { messages, errors: 1 };
  while (Date.now() < deadline) {
    s.write("MAIL FROM:<bench@sender.example>\r\n");
    const m = await reply();
    s.write("RCPT TO:<user@dest.example>\r\n");
    const r = await reply();
    s.write("DATA\r\n");
    const d = await reply();
    if (m !== 250 || r !== 250 || d !== 354) {
      errors++;
      break;
    }
    s.write(body);
    if ((await reply()) === 250) messages++;
    else errors++;
  }
  s.end("QUIT\r\n");
  await closed;
  return { messages, errors };
}

const deadline = Date.now() + seconds * 1000;
const results = await Promise.all(Array.from({ length: conns }, () => session(deadline)));
clearTimeout(hardStop);
process.send({ type: "result", messages: results.reduce((a, r) => a + r.messages, 0), errors: results.reduce((a, r) => a + r.errors, 0) });
