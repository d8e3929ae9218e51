import { EventEmitter } from "eventemitter3";
import type { PluginError, ProxyError } from "./errors.js";
import type { CloseInfo } from "./hooks.js";
import type { ConnectionInfo } from "./messages.js";
import type { ListenerAddress } from "./proxy.js";
import type { Target } from "./types.js";

/** Report-only events (eventemitter3). Listeners cannot change behaviour; taps do that. */
export interface ProxyEvents {
  listening: (address: ListenerAddress) => void;
  connectionOpen: (connection: ConnectionInfo) => void;
  connectionClose: (connection: ConnectionInfo, info: CloseInfo) => void;
  upstreamError: (event: { connection: ConnectionInfo; target: Target; error: ProxyError }) => void;
  pluginError: (error: PluginError) => void;
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
