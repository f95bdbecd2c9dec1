/** Route guards: a valid bearer token (sets `userId`), or the admin token. */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { extractToken } from '../auth/tokens.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../errors.js';

export function requireUser(s: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = extractToken(c.req.header('authorization'));
    if (!token) throw new AppError('unauthorized', 'missing bearer token');
    c.set('userId', await s.tokens.verify(token));
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
