export { Proxy, type ProxyOptions, type ListenerAddress, type CloseOptions } from "./proxy.js";
export { Connection, type ConnectionState, type Cleanup, normalizeAddress } from "./connection.js";
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
export { CertificateStore, upgradeToTls, type UpgradeOptions } from "./tls.js";
export type { ListenerChanges } from "./listeners.js";
export { TcpProtocol } from "./tcp-protocol.js";
export {
  optionProblems,
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
export {
  parseProxyHeader,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  encodeProxyHeaderV2Local,
  crc32c,
  ProxyHeaderError,
  ProxyTlv,
  PROXY_V2_SIGNATURE,
  PROXY_V1_MAX_LENGTH,
  PROXY_HEADER_DEFAULT_LIMIT,
  type ProxyHeader,
  type ProxyHeaderParse,
  type ProxyHeaderInput,
  type ProxyAddress,
  type ProxyTlvEntry,
} from "./internal/proxy-protocol.js";
export { ClientHelloReader, ClientHelloError, CLIENT_HELLO_DEFAULT_LIMIT, isGrease, type ClientHello } from "./internal/tls-client-hello.js";
export { inboundProxyHeader, PROXY_HEADER_DEFAULT_TIMEOUT } from "./proxy-protocol-accept.js";
export { peekClientHello, type TcpRouteTls } from "./sni-passthrough.js";
