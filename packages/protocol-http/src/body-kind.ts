/**
 * How a message body is delimited (RFC 9112 §6.3), as the framer, the heads and the exchange
 * speak of it, and which statuses carry none.
 */
export const BODY_NONE = 0;
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;
/** read until the sender closes (responses only) */
export const BODY_CLOSE = 3;
export type BodyKind = 0 | 1 | 2 | 3;

/** Statuses that never carry a body (RFC 9110 §6.4.1): 1xx, 204, 304 (101 turns into a tunnel). */
export function bodilessStatus(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}
