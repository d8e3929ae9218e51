export { PostgresProtocol, type PostgresOptions } from "./postgres-protocol.js";
export type { StartupRewrite } from "./startup-rewrite.js";
export {
  parseFirstPacket,
  firstPacketLengthProblem,
  buildErrorResponse,
  MAX_STARTUP_PACKET,
  type FirstPacket,
} from "./postgres-wire.js";
