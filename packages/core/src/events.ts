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
