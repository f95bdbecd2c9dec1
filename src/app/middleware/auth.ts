/** Route guards: a valid bearer token (sets `userId` and `sid`), or the admin token. */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { extractToken } from '../auth/tokens.js';
import { clientIp, isLoopback, type AppEnv, type Services } from '../context.js';
import { AppError } from '../../errors.js';

export function requireUser(s: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = extractToken(c.req.header('authorization'));
    if (!token) throw new AppError('unauthorized', 'missing bearer token');
    const claims = await s.tokens.claims(token);
    c.set('userId', claims.userId);
    c.set('sid', claims.sid);
    await next();
  };
}

/** A user token (sets `userId`) or the admin token (sets `admin`). */
export function requireUserOrAdmin(s: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = extractToken(c.req.header('authorization'));
    if (!token) throw new AppError('unauthorized', 'missing bearer token');
    if (isAdminToken(token, s.config.adminToken)) c.set('admin', true);
    else {
      const claims = await s.tokens.claims(token);
      c.set('userId', claims.userId);
      c.set('sid', claims.sid);
    }
    await next();
  };
}

/** The admin token, or 403. */
export function requireAdmin(s: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!isAdminToken(extractToken(c.req.header('authorization')), s.config.adminToken)) {
      throw new AppError('forbidden', 'the admin token is required');
    }
    c.set('admin', true);
    await next();
  };
}

/**
 * Operator pages (/metrics, /status): open on loopback, elsewhere only with the admin token.
 * @param queryParam also accept the token as this query parameter (a browser tab cannot
 *   send a header).
 */
export function requireLoopbackOrAdmin(s: Services, what: string, queryParam?: string): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const ip = clientIp(s.config.trustProxy, c.env.ip, c.req.header('x-forwarded-for'));
    const presented = extractToken(c.req.header('authorization')) ?? (queryParam ? c.req.query(queryParam) : undefined);
    if (!isLoopback(ip) && !isAdminToken(presented, s.config.adminToken)) {
      throw new AppError('forbidden', `${what} answer on loopback or with the admin token`);
    }
    await next();
  };
}

/** Constant-time comparison of a presented admin token with ADMIN_TOKEN. */
export function isAdminToken(presented: string | undefined, adminToken: string | undefined): boolean {
  if (!adminToken || !presented) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(adminToken);
  return a.length === b.length && timingSafeEqual(a, b);
}
