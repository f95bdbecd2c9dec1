/**
 * One error base for the HTTP API. Every code a client can see is listed in ERROR_CODES with
 * its status; docs/errors.md lists the same set (a test keeps them equal). One handler in
 * create-app.ts turns an AppError into `{"error":{"code","message"}}`; anything else becomes
 * a 500 without internals.
 */

export const ERROR_CODES = {
  bad_request: 400,
  bad_json: 400,
  validation_failed: 400,
  json_too_deep: 400,
  push_endpoint_forbidden: 400,
  unauthorized: 401,
  invalid_token: 401,
  token_expired: 401,
  invalid_credentials: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  email_taken: 409,
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

/** The JSON body of an error response. */
export function errorBody(code: ErrorCode, message: string, field?: string): string {
  return JSON.stringify({ error: field ? { code, message, field } : { code, message } });
}
