// The public API of @switchyard/core: everything a user, a plugin or a protocol package may
// import. Nothing else is reachable (package.json `exports` has only this entry); helpers that
// core alone uses live in src/internal/ or stay unexported in their module.

// the proxy and what protocols see of it
export { Proxy, type ProxyOptions, type CloseOptions } from "./proxy.js";
export type { ProtocolContext } from "./protocol-context.js";
export type { ListenerChanges } from "./listeners.js";

// shared vocabulary
export type { CloseInfo, CloseReason, ConnectionInfo, ListenerAddress, RouteKey } from "./vocabulary.js";

// connections
export { Connection, ConnectionTimer, defineConnectionTimer, type Cleanup, type ProtocolTimer } from "./connection.js";
export { CONNECTION_TRANSITIONS, canTransition, IllegalTransitionError, type ConnectionState } from "./connection-state.js";

// hooks, plugins, protocols, logging
export { defineHooks, type ProxyHooks, type Rejection, type ResolveRequest, type RoutedRequest } from "./hooks.js";
export { Stage, type StageName } from "./stage.js";
export {
  createJsonLogger,
  silentLogger,
  type JsonLogger,
  type Logger,
  type LogLevel,
  type MatchKeyKind,
  type ProtocolHandler,
  type ProxyPlugin,
  type Refusal,
  type RefusalKind,
  type RouteOptionsReader,
} from "./plugin.js";
export type { ProxyEvents, RequestRecord } from "./events.js";
export type { Counter, ProxyStats } from "./stats.js";

// errors
export {
  ConfigError,
  ConnectionRejectedError,
  PluginError,
  ProtocolError,
  ProxyError,
  ResolveError,
  ResolveErrorKind,
  RouteNotFoundError,
  ShuttingDownError,
  SsrfBlockedError,
  UpstreamConnectError,
  UpstreamResetError,
  UpstreamTimeoutError,
} from "./errors.js";

// configuration
export {
  DEFAULT_TIMEOUTS,
  type ListenerConfig,
  type ListenerTls,
  type LoadBalancing,
  type RouteConfig,
  type RouteMatch,
  type SsrfOptions,
  type Target,
  type TargetInput,
  type TargetTls,
  type Timeouts,
} from "./types.js";
export { closestName, optionProblems, unknownOptionMessage, type OptionsCheckLabels } from "./options-check.js";

// L7 messages and their headers
export {
  isHttpRequest,
  isHttpResponse,
  type DirectResponse,
  type HttpRequestMessage,
  type HttpUpstreamResponse,
  type ProxyRequest,
  type RetryRequest,
  type UpstreamResponse,
} from "./messages.js";
export {
  appendHeader,
  getHeader,
  getHeaders,
  hasHeader,
  headerTokens,
  removeHeader,
  setHeader,
  type HeaderPairs,
} from "./headers.js";

// routing and resolvers
export type { Balancer, ResolveContext, Resolver, ResolverAnswer, Route, RouteMatchResult } from "./routing/route.js";
export { RouteTable } from "./routing/route-table.js";
export { CachedResolver, withResolverTimeout, type CachedResolverOptions } from "./routing/resolver-cache.js";
export { formatTarget, parseTarget } from "./routing/target.js";
export { IpMatcher } from "./routing/cidr.js";
export { compileGlob, type GlobMatcher } from "./routing/glob.js";

// connecting, relaying, TLS
export { dial, type DialOptions } from "./dialer.js";
export { EARLY_READ_LIMIT, earlyRead, onSocketEnd, relay, type RelayOptions } from "./relay.js";
export type { ConnectUpstreamOptions } from "./internal/upstream-connect.js";
export { UPSTREAM_HANDSHAKE_TIMER, UpstreamHandshake, type UpstreamHandshakeOptions } from "./upstream-handshake.js";
export { UPSTREAM_TLS_TIMER, upgradeUpstream, type UpstreamTlsOptions } from "./upstream-tls.js";
export { CertificateStore, DEFAULT_LISTENER_CIPHERS, TICKET_KEY_LIFETIME_MS, upgradeToTls, type UpgradeOptions } from "./tls.js";
export {
  describeCertificate,
  identityKeyFields,
  identitySummary,
  VERIFY_CLIENT_MODES,
  type CertificateDescription,
  type ClientIdentity,
  type ClientSans,
  type VerifyClientMode,
} from "./client-identity.js";
export { TcpProtocol } from "./tcp-protocol.js";

// PROXY protocol (v1/v2) and the TLS ClientHello, for protocols that read or write them
export {
  crc32c,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  encodeProxyHeaderV2Local,
  parseProxyHeader,
  PROXY_HEADER_DEFAULT_LIMIT,
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  ProxyHeaderError,
  ProxyTlv,
  type ProxyAddress,
  type ProxyHeader,
  type ProxyHeaderInput,
  type ProxyHeaderParse,
  type ProxySslInfo,
  type ProxyTlvEntry,
} from "./proxy-protocol.js";
export { CLIENT_HELLO_DEFAULT_LIMIT, ClientHelloError, ClientHelloReader, isGrease, type ClientHello } from "./tls-client-hello.js";
export { inboundProxyHeader, PROXY_HEADER_DEFAULT_TIMEOUT } from "./proxy-protocol-accept.js";
export { peekClientHello, type TcpRouteTls } from "./sni-passthrough.js";
