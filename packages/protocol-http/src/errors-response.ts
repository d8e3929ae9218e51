/**
 * Short plain-text error responses carrying a request id, and the mapping from failures to
 * status codes (502 connect/reset/parse/truncation, 504 timeouts, 503 queue full or shutting
 * down with Retry-After, 404/421/403 from routing).
 */
import { ProxyError, ResolveError } from "@switchyard/core";

/** A framing or limit violation found while parsing; `status` is what to answer (or 502 upstream). */
export class HttpParseError extends ProxyError {
  override name = "HttpParseError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(status >= 500 ? "PRX_ERR_HTTP_UPSTREAM_PARSE" : "PRX_ERR_HTTP_PARSE", message);
    this.status = status;
  }
}

/** An HTTP failure with the status the client should see. */
export class HttpStatusError extends ProxyError {
  override name = "HttpStatusError";
  readonly status: number;
  constructor(status: number, code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.status = status;
  }
}

export const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  103: "Early Hints",
  200: "OK",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  417: "Expectation Failed",
  421: "Misdirected Request",
  431: "Request Header Fields Too Large",
  // nginx's codes for client certificates (plugin-mtls)
  495: "SSL Certificate Error",
  496: "SSL Certificate Required",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  508: "Loop Detected",
};

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? "Unknown";
}

/** Status for an error raised while routing or reaching the upstream. */
export function statusForError(err: unknown): number {
  if (err instanceof HttpParseError || err instanceof HttpStatusError) return err.status;
  if (err instanceof ResolveError) {
    switch (err.kind) {
      case "NOT_FOUND":
        return 404;
      case "FORBIDDEN":
        return 403;
      case "UNAVAILABLE":
        return 503;
      case "TIMEOUT":
        return 504;
      default:
        return 502;
    }
  }
  const code = (err as { code?: string } | undefined)?.code;
  if (code === "PRX_ERR_UPSTREAM_TIMEOUT") return 504;
  if (code === "PRX_ERR_SHUTTING_DOWN") return 503;
  if (code === "PRX_ERR_PLUGIN") return 500;
  return 502;
}

/** One configured error body (`errorBodies` option), resolved. */
export interface ErrorBody {
  readonly contentType: string;
  /** the text, with `{status}` and `{requestId}` to fill in */
  readonly body: string;
}

/** Configured error bodies by status (`errorBodies`), or undefined for the defaults only. */
export type ErrorBodies = ReadonlyMap<number, ErrorBody>;

const PLAIN = "text/plain; charset=utf-8";

/** The body of an error response: a configured one, or the status and the request id. */
function errorBody(status: number, requestId: string, bodies: ErrorBodies | undefined): ErrorBody {
  const own = bodies?.get(status);
  if (own === undefined) return { contentType: PLAIN, body: `${status} ${statusText(status)}\nrequest id: ${requestId}\n` };
  return { contentType: own.contentType, body: own.body.replaceAll("{status}", String(status)).replaceAll("{requestId}", requestId) };
}

/**
 * A complete error response: Content-Length, the request id in `X-Request-Id`, `Retry-After`
 * for 503, `Connection: close` when the session will close. The body says the status and the
 * request id, and nothing of why (that goes to the log, where the id finds it), unless the
 * listener or route configured its own body for this status (`bodies`).
 * `headOnly` (the answer to a HEAD request) sends the head alone, Content-Length included
 * (RFC 9110 §9.3.2): body bytes would be read as the start of the next response.
 */
export function errorResponse(status: number, requestId: string, close: boolean, bodies: ErrorBodies | undefined, headOnly = false): Buffer {
  const reason = statusText(status);
  const { contentType, body } = errorBody(status, requestId, bodies);
  let head = `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\n`;
  if (status === 503) head += "Retry-After: 1\r\n";
  head += close ? "Connection: close\r\n\r\n" : "\r\n";
  return Buffer.from(headOnly ? head : head + body, "utf8");
}
