// Bench backend, run as its own process. One TCP server on 127.0.0.1, two modes chosen by the
// first byte a client sends:
//   "E" echo: every byte comes back (the "E" too), for round-trip and idle-connection benches.
//   "S" sink: "S" + uint64be length, then that many bytes are discarded; when all arrived the
//       backend answers 8 bytes (the count) so the sender can stop its clock.
import net from "node:net";

const E = 0x45;
const S = 0x53;

const server = net.createServer({ noDelay: true }, (s) => {
  s.on("error", () => {});
  let mode = 0;
  let hdr = null; // sink header bytes collected so far
  let need = 0;
  let got = 0;
  s.on("data", (d) => {
    if (mode === 0) mode = d[0];
    if (mode === E) return void s.write(d);
    if (mode !== S) return void s.destroy();
    if (need === 0) {
      hdr = hdr ? Buffer.concat([hdr, d]) : d;
      if (hdr.length < 9) return;
      need = Number(hdr.readBigUInt64BE(1));
      got = hdr.length - 9;
      hdr = null;
    } else {
      got += d.length;
    }
    if (got >= need) {
      const ack = Buffer.alloc(8);
      ack.writeBigUInt64BE(BigInt(got));
      s.write(ack);
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  process.send({ type: "ready", port: server.address().port });
});
process.on("disconnect", () => process.exit(0));
