/**
 * The one place errors become responses: AppError by its code and status, Hono's
 * HTTPException by its status, anything else a logged 500 that shows no internals.
 * A foreign-key violation on a signed-in request whose user row has gone is the race
 * between the token check's cache and a deletion: the token is `invalid_token`, not a 500.
 */
import type { ErrorHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Logger } from '../observability/logger.js';
import { isForeignKeyViolation } from '../store/db-errors.js';
import type { AppEnv } from './context.js';
import { AppError, ERROR_CODES, errorResponse, type ErrorCode } from '../errors.js';

/** The first code listed with a status: what a Hono HTTPException of that status becomes. */
const codeOfStatus = (status: number): ErrorCode | undefined =>
  (Object.keys(ERROR_CODES) as ErrorCode[]).find((code) => ERROR_CODES[code] === status);

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
      return errorResponse('client_gone', 'the client went away');
    }
    if (err instanceof AppError) {
      if (err.status >= 500) log.error({ err, reqId: c.get('requestId'), route: c.req.routePath }, err.message);
      return errorResponse(err.code, err.message, err.field, err.headers);
    }
    const byStatus = err instanceof HTTPException ? codeOfStatus(err.status) : undefined;
    if (byStatus) return errorResponse(byStatus, err.message || 'request refused');
    const userId = c.get('userId');
    if (userId && opts.userGone && isForeignKeyViolation(err)) {
      opts.userGone.forget(userId);
      const exists = await Promise.resolve(opts.userGone.check(userId)).catch(() => true);
      if (!exists) return errorResponse('invalid_token', "the token's user no longer exists");
    }
    log.error({ err, reqId: c.get('requestId'), route: c.req.routePath }, 'unhandled error');
    return errorResponse('internal', 'internal error');
  };
}
