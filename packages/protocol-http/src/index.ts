export { HttpProtocol } from "./protocol.js";
export type { HttpListenerOptions, HttpRouteOptions, HttpRequestOptions, PoolOptions } from "./options.js";
export { HttpSniffer, type SniffResult } from "./sniffer.js";
export { HttpParseError, HttpStatusError } from "./errors-response.js";
