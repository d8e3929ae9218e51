import { EventEmitter } from "eventemitter3";
import type { PluginError, ProxyError } from "./errors.js";
import type { Target } from "./types.js";
import type { CloseInfo, ConnectionInfo, ListenerAddress } from "./vocabulary.js";

/** Report-only events (eventemitter3). Listeners cannot change behaviour; taps do that. */
export interface ProxyEvents {
  listening: (address: ListenerAddress) => void;
  connectionOpen: (connection: ConnectionInfo) => void;
  connectionClose: (connection: ConnectionInfo, info: CloseInfo) => void;
  upstreamError: (event: { connection: ConnectionInfo; target: Target; error: ProxyError }) => void;
  pluginError: (error: PluginError) => void;
  /**
   * One L7 message finished (answered, failed or abandoned): the access-log record. Emitted by
   * protocols that have messages (HTTP: once per request, after the last response byte was
   * written or the exchange was given up). Check `listenerCount("requestComplete")` before
   * building it on a hot path.
   */
  requestComplete: (record: RequestRecord) => void;
}

/** What one finished L7 message looked like: the fields of an access-log line. */
export interface RequestRecord {
  /** the request id (echoed in error bodies and X-Request-Id) */
  readonly id: string;
  readonly connectionId: string;
  readonly listener: string;
  readonly protocol: string;
  /** route name, when one matched */
  readonly route: string | undefined;
  /** the last target tried, "host:port" */
  readonly target: string | undefined;
  readonly clientIp: string;
  readonly method: string;
  /** the normalised path the request was routed by (no query) */
  readonly path: string;
  /** the status sent to the client; 0 when none was sent (client gone, connection cut) */
  readonly status: number;
  /** from the first byte of the request head to the last byte of the response (or the end) */
  readonly durationMs: number;
  /** from the request being sent upstream to the first response byte of the last attempt */
  readonly upstreamTtfbMs: number | undefined;
  /** body bytes received from the client */
  readonly bytesIn: number;
  /** bytes written to the client (head and body) */
  readonly bytesOut: number;
  /** upstream attempts made (0 when answered without going upstream) */
  readonly attempts: number;
  /** the error code when the exchange failed (PRX_ERR_…), else undefined */
  readonly error: string | undefined;
}

/**
 * The proxy's emitter: a listener that throws is logged and the event's remaining listeners are
 * skipped, but the throw goes no further — emitted from inside a connection's close or an
 * accept, it would otherwise escape into socket callbacks and end the process.
 */
export class ReportEmitter extends EventEmitter<ProxyEvents> {
  readonly #onError: (event: string, err: unknown) => void;

  constructor(onError: (event: string, err: unknown) => void) {
    super();
    this.#onError = onError;
  }

  override emit<T extends EventEmitter.EventNames<ProxyEvents>>(event: T, ...args: EventEmitter.EventArgs<ProxyEvents, T>): boolean {
    try {
      return super.emit(event, ...args);
    } catch (err) {
      this.#onError(String(event), err);
      return true;
    }
  }
}
