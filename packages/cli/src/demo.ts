/**
 * The embedded demo (`switchyard` with no config): in-process backends on 127.0.0.1 port 0 — a
 * TCP echo, an HTTP hello server and an SMTP sink — and a proxy in front of them on fixed ports,
 * one route per protocol available (tcp on 7001; http on 7080 when @switchyard/protocol-http
 * loads; smtp on 7025 when @switchyard/protocol-smtp does). A fixed port that is taken falls
 * back to a free one; the real ports are printed.
 */
import { once } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server } from "node:net";
import type { Proxy } from "@switchyard/core";
import { createMailSink, type DemoMessage } from "./demo-mail-backend.js";
import { prepareConfig } from "./prepare.js";
import { loadProtocol } from "./protocols.js";
import type { PendingSignals } from "./pending-signals.js";
import { serve, type Running } from "./run.js";

export const DEMO_PORTS = Object.freeze({ tcp: 7001, http: 7080, smtp: 7025 });
const HOST = "127.0.0.1";

async function listen(server: Server | HttpServer, port: number): Promise<number> {
  server.listen(port, HOST);
  await Promise.race([once(server, "listening"), once(server, "error").then(([e]) => Promise.reject(e))]);
  return (server.address() as AddressInfo).port;
}

/** The port if it is free now, else 0 (a free one chosen at bind). */
async function freeOr0(port: number): Promise<number> {
  const probe = createServer();
  try {
    await listen(probe, port);
    await new Promise<void>((r) => probe.close(() => r()));
    return port;
  } catch {
    return 0;
  }
}

async function startBackends() {
  const sockets = new Set<import("node:net").Socket>();
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("error", () => s.destroy()).on("close", () => sockets.delete(s));
    s.pipe(s);
  });
  const hello = createHttpServer((req, res) => {
    res.setHeader("content-type", "text/plain; charset=utf-8");
    res.end(`hello from the switchyard demo backend: ${req.method} ${req.url}\n`);
  });
  const mail = createMailSink(printMessage);
  const echoPort = await listen(echo, 0);
  const helloPort = await listen(hello, 0);
  const mailPort = await listen(mail.server, 0);
  const close = async () => {
    for (const s of sockets) s.destroy();
    hello.closeAllConnections();
    mail.closeSessions();
    await Promise.all([new Promise((r) => echo.close(r)), new Promise((r) => hello.close(r)), new Promise((r) => mail.server.close(r))]);
  };
  return { echoPort, helloPort, mailPort, close };
}

function printMessage(m: DemoMessage): void {
  process.stdout.write(`demo mail backend: a message from <${m.from}> to ${m.to.map((a) => `<${a}>`).join(", ")}, ${m.bytes} bytes (dropped)\n`);
}

function banner(proxy: Proxy, http: boolean, smtp: boolean): string {
  const port = (name: string) => proxy.addresses().find((a) => a.name === name)?.port;
  const tries: Array<[string, string]> = [[`nc ${HOST} ${port("tcp")}`, "type a line: the TCP echo backend answers it"]];
  if (http) tries.push([`curl http://${HOST}:${port("http")}/`, "the HTTP hello backend, through the proxy"]);
  if (smtp) {
    // --crlf: SMTP lines end in CRLF; the proxy refuses a message with a bare LF (smuggling)
    const send = `echo hi | curl -sS --crlf smtp://${HOST}:${port("smtp")} --mail-from me@demo.test --mail-rcpt you@demo.test -T -`;
    tries.push([send, "send a message to the SMTP sink, which prints a line for it"]);
  }
  const lines = ["", "Switchyard demo: a proxy in front of backends running in this process. Try:"];
  for (const [cmd, what] of tries) lines.push(`  # ${what}`, `  ${cmd}`);
  if (!http) lines.push("  (http is not available: install @switchyard/protocol-http for the HTTP route)");
  if (!smtp) lines.push("  (smtp is not available: install @switchyard/protocol-smtp for the SMTP route)");
  lines.push("Ctrl-C stops it. Run your own with: switchyard --config switchyard.yaml", "");
  return lines.join("\n");
}

/** Starts the demo; resolves with the exit code once a signal stopped it. */
export async function runDemo(pending?: PendingSignals): Promise<number> {
  const [http, smtp] = await Promise.all(
    ["http", "smtp"].map((name) =>
      loadProtocol(name, undefined).then(
        () => true,
        () => false,
      ),
    ),
  );
  const backends = await startBackends();
  const listeners: unknown[] = [{ name: "tcp", protocol: "tcp", host: HOST, port: await freeOr0(DEMO_PORTS.tcp) }];
  const routes: unknown[] = [{ name: "echo", listener: "tcp", targets: [`${HOST}:${backends.echoPort}`] }];
  if (http) {
    listeners.push({ name: "http", protocol: "http", host: HOST, port: await freeOr0(DEMO_PORTS.http) });
    routes.push({ name: "hello", listener: "http", targets: [`http://${HOST}:${backends.helloPort}`] });
  }
  if (smtp) {
    listeners.push({ name: "smtp", protocol: "smtp", host: HOST, port: await freeOr0(DEMO_PORTS.smtp), options: { hostname: "demo.switchyard.test" } });
    routes.push({ name: "mail", listener: "smtp", targets: [`${HOST}:${backends.mailPort}`] });
  }
  const result = await prepareConfig({ listeners, routes, shutdownTimeout: 5000 }, undefined);
  if (!result.ok) {
    await backends.close();
    for (const p of result.problems) process.stderr.write(`switchyard demo: ${p}\n`);
    return 1;
  }
  const running: Running | number = await serve(result.prepared, {
    banner: (proxy) => banner(proxy, http === true, smtp === true),
    onClose: backends.close,
    ...(pending ? { pending } : {}),
  });
  if (typeof running === "number") return running;
  return running.done;
}
