export {
  defineConfig,
  type SwitchyardConfig,
  type ListenerEntry,
  type RouteEntry,
  type PluginEntry,
  type TlsEntry,
  type PemSource,
  type ProtocolName,
  type LogLevel,
} from "./config.js";
export { validateConfig, type ValidationResult } from "./validate.js";
export { loadConfigFile, ConfigLoadError } from "./load-config.js";
export { prepareConfig, prepareFile, type Prepared, type PreparedPlugin, type PrepareResult } from "./prepare.js";
export { PROTOCOLS, type ProtocolSource } from "./protocols.js";
export { pickPluginClass, type PluginClass } from "./plugins.js";
export { serve, type Running, type ServeOptions } from "./run.js";
export { main } from "./main.js";
