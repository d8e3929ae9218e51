/**
 * The command's log lines for the proxy's report-only events: `connection.open`,
 * `connection.close` and the access log (`<protocol>.request`, e.g. `http.request`: one line per
 * finished request) at info, `upstream.error` at warn.
 *
 * An event is listened to only while its level is enabled, and the wiring follows level changes
 * (a reload): with `log.level: warn` the proxy has no `requestComplete` listener, so a protocol
 * checking `listenerCount` does not even build the record.
 */
import { formatTarget, identitySummary, type ConnectionInfo, type Proxy, type ProxyEvents, type RequestRecord } from "@switchyard/core";
import type { CommandLogger } from "./logger.js";

/** `host:port`, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

const client = (c: ConnectionInfo) => hostPort(c.clientIp, c.clientPort);

type Wiring = { [E in keyof ProxyEvents]: { event: E; level: "info" | "warn"; listener: ProxyEvents[E] } }[keyof ProxyEvents];

function wirings(log: CommandLogger): Wiring[] {
  return [
    {
      event: "connectionOpen",
      level: "info",
      listener: (c) => log.info("connection.open", { id: c.id, listener: c.listener, protocol: c.protocol, client: client(c), tls: c.tls }),
    },
    {
      event: "connectionClose",
      level: "info",
      listener: (c, info) =>
        log.info("connection.close", {
          id: c.id,
          listener: c.listener,
          protocol: c.protocol,
          client: client(c),
          reason: info.reason,
          bytesIn: info.bytesIn,
          bytesOut: info.bytesOut,
          durationMs: info.durationMs,
          route: info.route ?? null,
          target: info.target ?? null,
          ...(info.error ? { error: info.error.message } : {}),
          ...(c.identity ? { clientCert: identitySummary(c.identity) } : {}),
        }),
    },
    { event: "requestComplete", level: "info", listener: (r) => log.infoJson(requestMsg(r.protocol), requestJson(r)) },
    {
      event: "upstreamError",
      level: "warn",
      listener: ({ connection, target, error }) =>
        log.warn("upstream.error", {
          id: connection.id,
          listener: connection.listener,
          target: formatTarget(target),
          code: error.code,
          error: error.message,
        }),
    },
  ];
}

/** The access-log line's fields: the record's, with null for what is absent (the key is always there). */
/**
 * The access-log fields of a finished request as JSON, written by hand: one line per request is
 * the command's hottest log path, and a generic serializer walking an object costs several times
 * more (BENCHMARKS.md, "What the access log costs"). Strings go through JSON.stringify (escaping);
 * absent values are null; times are in ms, to the µs.
 */
export function requestJson(r: RequestRecord): string {
  // request and connection ids and client addresses are core's and never need escaping;
  // everything else (names from config, protocol names, methods, targets, paths) goes through q()
  return (
    `"id":"${r.id}","connectionId":"${r.connectionId}","listener":${q(r.listener)}` +
    `,"protocol":${q(r.protocol)},"route":${str(r.route)},"target":${str(r.target)},"clientIp":"${r.clientIp}"` +
    `,"method":${q(r.method)},"path":${q(r.path)},"status":${r.status},"durationMs":${ms(r.durationMs)}` +
    `,"upstreamTtfbMs":${r.upstreamTtfbMs === undefined ? "null" : ms(r.upstreamTtfbMs)},"bytesIn":${r.bytesIn},"bytesOut":${r.bytesOut}` +
    `,"attempts":${r.attempts},"error":${str(r.error)}`
  );
}

/** `<protocol>.request`, as the JSON string a line carries, made once per protocol */
const requestMsgs = new Map<string, string>();
function requestMsg(protocol: string): string {
  let m = requestMsgs.get(protocol);
  if (m === undefined) requestMsgs.set(protocol, (m = `${protocol}.request`));
  return m;
}

/** characters a JSON string cannot hold as they are (controls, quote, backslash, surrogates) */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;
/** a JSON string: quoted as it is when nothing needs escaping (the usual case), else JSON.stringify */
const q = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);
const str = (s: string | undefined): string => (s === undefined ? "null" : q(s));
const ms = (x: number): number => Math.round(x * 1000) / 1000;

/** Listens to the events whose level `log` writes, now and after every level change. */
export function logEvents(proxy: Proxy, log: CommandLogger): void {
  const all = wirings(log);
  const on = new Set<Wiring>();
  const sync = () => {
    for (const w of all) {
      const want = log.isEnabled(w.level);
      if (want === on.has(w)) continue;
      // eventemitter3's typing cannot follow the union; each wiring pairs an event with its own listener type
      const emitter = proxy.events as unknown as { on(e: string, l: unknown): void; off(e: string, l: unknown): void };
      if (want) {
        emitter.on(w.event, w.listener);
        on.add(w);
      } else {
        emitter.off(w.event, w.listener);
        on.delete(w);
      }
    }
  };
  sync();
  log.onLevelChange(sync);
}
