/**
 * The one place errors become responses: AppError by its code and status, Hono's
 * HTTPException by its status, anything else a logged 500 that shows no internals.
 * A foreign-key violation on a signed-in request whose user row has gone is the race
 * between the token check's cache and a deletion: the token is `invalid_token`, not a 500.
 */
import type { ErrorHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from '../ops/logger.js';
import { isForeignKeyViolation } from '../store/db-errors.js';
import type { AppEnv } from './context.js';
import { AppError, ERROR_CODES, errorBody, type ErrorCode } from './errors.js';

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

/** A JSON error response with the code's status. */
export function jsonError(code: ErrorCode, message: string, field?: string, headers?: Record<string, string>): Response {
  return new Response(errorBody(code, message, field), {
    status: ERROR_CODES[code],
    headers: { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers },
  });
}

export interface ErrorHandlerOptions {
  /** The user-existence check, to recheck (uncached) a user whose write tripped a foreign key. */
  userGone?: { forget(userId: string): void; check(userId: string): boolean | Promise<boolean> };
}

export function handleError(log: Logger, opts: ErrorHandlerOptions = {}): ErrorHandler<AppEnv> {
  return async (err, c) => {
    // The client went away (mid-body, mid-load): nobody reads this answer. It is counted as
    // 499, as nginx does, and is no server error.
    if (c.req.raw.signal.aborted) {
      log.debug({ reqId: c.get('requestId'), route: c.req.routePath, err: (err as Error).message }, 'client went away');
      return jsonError('client_gone', 'the client went away');
    }
    if (err instanceof AppError) {
      if (err.status >= 500) log.error({ err, reqId: c.get('requestId'), route: c.req.routePath }, err.message);
      return jsonError(err.code, err.message, err.field, err.headers);
    }
    if (err instanceof HTTPException && BY_STATUS[err.status]) {
      return jsonError(BY_STATUS[err.status]!, err.message || 'request refused');
    }
    const userId = c.get('userId');
    if (userId && opts.userGone && isForeignKeyViolation(err)) {
      opts.userGone.forget(userId);
      const exists = await Promise.resolve(opts.userGone.check(userId)).catch(() => true);
      if (!exists) return jsonError('invalid_token', "the token's user no longer exists");
    }
    log.error({ err, reqId: c.get('requestId'), route: c.req.routePath }, 'unhandled error');
    return jsonError('internal', 'internal error');
  };
}
