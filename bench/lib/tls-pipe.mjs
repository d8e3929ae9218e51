// The floor of TLS termination in Node: tls.createServer with the same certificate, each client
// piped to its own backend connection (no HTTP parsing, no pooling). argv: backendPort certDir
// clientCerts("0"|"1"). Its own process for the TLS bench.
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { serveControl } from "./control.mjs";

const [backendPort, dir, clientCerts] = [Number(process.argv[2]), process.argv[3], process.argv[4] === "1"];
const server = tls.createServer(
  {
    cert: readFileSync(`${dir}/server.crt`),
    key: readFileSync(`${dir}/server.key`),
    minVersion: "TLSv1.2",
    ...(clientCerts ? { ca: readFileSync(`${dir}/ca.crt`), requestCert: true, rejectUnauthorized: true } : {}),
  },
  (client) => {
    const up = net.connect(backendPort, "127.0.0.1");
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
    client.pipe(up).pipe(client);
  },
);
server.on("tlsClientError", () => {});
server.listen(0, "127.0.0.1", () => serveControl(server.address().port, () => new Promise((r) => server.close(r))));
