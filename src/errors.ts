/**
 * Every code a client can see, in one runtime-neutral module: HTTP error codes with their
 * status, the codes of WebSocket `error` frames, and the close codes. docs/errors.md lists
 * the same sets (a test keeps them equal). `errorBody` renders every HTTP error body, whoever
 * answers: the app's error handler, the gateway's upgrade refusals and both engines.
 */

export const ERROR_CODES = {
  bad_request: 400,
  bad_json: 400,
  validation_failed: 400,
  json_too_deep: 400,
  push_endpoint_forbidden: 400,
  unknown_namespace: 400,
  not_members_namespace: 400,
  unauthorized: 401,
  invalid_token: 401,
  token_expired: 401,
  session_revoked: 401,
  invalid_credentials: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  email_taken: 409,
  idempotency_conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  upgrade_required: 426,
  client_gone: 499,
  rate_limited: 429,
  headers_too_large: 431,
  internal: 500,
  load_failed: 502,
  not_ready: 503,
  store_unavailable: 503,
  over_capacity: 503,
  deadline_exceeded: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AppErrorOptions {
  cause?: unknown;
  /** The request field that failed validation, as a dotted path. */
  field?: string;
  headers?: Record<string, string>;
}

export class AppError extends Error {
  override name = 'AppError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = ERROR_CODES[code];
    this.field = options.field;
    this.headers = options.headers;
  }
}

/** The JSON body of an error response: `{"error":{"code","message"[,"field"]}}`. */
export function errorBody(code: ErrorCode, message: string, field?: string): string {
  return JSON.stringify({ error: field ? { code, message, field } : { code, message } });
}

/** An error `Response` (Web API, so the app and the Bun engine share it), with the code's status. */
export function errorResponse(code: ErrorCode, message: string, field?: string, headers?: Record<string, string>): Response {
  return new Response(errorBody(code, message, field), {
    status: ERROR_CODES[code],
    headers: { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers },
  });
}

/** Codes of WebSocket `error` frames (the connection stays open). */
export const WS_ERROR_CODES = [
  'bad_json',
  'json_too_deep',
  'bad_frame',
  'internal',
  'unknown_op',
  'invalid_topic',
  'forbidden_topic',
  'too_many_subscriptions',
  'publish_forbidden',
  'rate_limited',
  'no_history',
  'idempotency_conflict',
  'unknown_namespace',
  'invalid_subscription_token',
  'subscription_token_expired',
  'membership_revoked',
  'no_presence',
  'not_subscribed',
  'invalid_token',
  'token_expired',
  'session_revoked',
  'store_unavailable',
] as const;
export type WsErrorCode = (typeof WS_ERROR_CODES)[number];

/**
 * Close codes a client sees (RFC 6455 section 7.4.1 and the IANA registry). 1006 is never
 * sent (it names a connection that ended without a close frame); 1002, 1007 and 1009 are sent
 * by the engines' WebSocket parsers.
 */
export const CLOSE = {
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  abnormal: 1006,
  invalidPayload: 1007,
  tooBig: 1009,
  restart: 1012,
  tryAgainLater: 1013,
  /** The access token expired (not refreshed with the `auth` op): refresh it once, reconnect. */
  tokenExpired: 4001,
  /** The token is invalid or its session was revoked: log in again. */
  revoked: 4003,
} as const;
