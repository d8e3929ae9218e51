export { Proxy, type ProxyOptions, type ListenerAddress, type CloseOptions } from "./proxy.js";
export type { ProtocolContext } from "./protocol-context.js";
export { Connection, ConnectionTimer, type Cleanup, normalizeAddress } from "./connection.js";
export { CONNECTION_TRANSITIONS, canTransition, IllegalTransitionError, type ConnectionState } from "./connection-state.js";
export {
  buildHooks,
  type ProxyHooks,
  type Rejection,
  type ResolveRequest,
  type CloseInfo,
  type CloseReason,
} from "./hooks.js";
export { Stage, type StageName } from "./stage.js";
export * from "./errors.js";
export * from "./types.js";
export * from "./headers.js";
export * from "./messages.js";
export type { ProxyEvents, RequestRecord } from "./events.js";
export type { ProxyStats, Counter } from "./stats.js";
export {
  type ProxyPlugin,
  type ProtocolHandler,
  type RouteOptionsReader,
  type Logger,
  type JsonLogger,
  type LogLevel,
  createJsonLogger,
  silentLogger,
} from "./plugin.js";
export { dial, type DialOptions } from "./dialer.js";
export { relay, earlyRead, onSocketEnd, EARLY_READ_LIMIT, type RelayOptions } from "./relay.js";
export { CertificateStore, DEFAULT_LISTENER_CIPHERS, upgradeToTls, type UpgradeOptions } from "./tls.js";
export type { ListenerChanges } from "./listeners.js";
export { TcpProtocol } from "./tcp-protocol.js";
export {
  optionProblems,
  listenerTlsProblems,
  listenerOptionProblems,
  routeOptionProblems,
  routeOptionValueProblems,
  unknownRouteOptions,
  unknownOptionMessage,
  closestName,
  type OptionsCheckLabels,
} from "./options-check.js";
export type {
  Route,
  RouteMatchResult,
  Balancer,
  Resolver,
  ResolverAnswer,
  ResolveContext,
} from "./routing/route.js";
export * from "./routing/target.js";
export * from "./routing/glob.js";
export * from "./routing/path.js";
export * from "./routing/cidr.js";
export * from "./routing/balancer.js";
export * from "./routing/route-table.js";
export * from "./routing/resolver-cache.js";
export * from "./routing/ssrf.js";
