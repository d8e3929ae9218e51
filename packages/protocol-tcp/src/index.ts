export { PostgresProtocol, type PostgresOptions } from "./postgres-protocol.js";
export type { DatabaseRouteOptions } from "./route-options.js";
export {
  parseFirstPacket,
  firstPacketLengthProblem,
  buildErrorResponse,
  MAX_STARTUP_PACKET,
  type FirstPacket,
} from "./postgres-wire.js";
export { MysqlProtocol, type MysqlOptions } from "./mysql-protocol.js";
export { MysqlError } from "./mysql-session.js";
export { Cap as MysqlCapability, DEFAULT_CAPABILITIES, parseHandshakeResponse, parseGreeting, type HandshakeResponse } from "./mysql-wire.js";
