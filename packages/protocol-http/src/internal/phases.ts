/** What a session's deadline means when it expires. */
export const T_HEADERS = 1;
export const T_KEEPALIVE = 2;
export const T_BODY = 3;
export const T_UPSTREAM_HEADERS = 4;
export const T_REQUEST = 5;
