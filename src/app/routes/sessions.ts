/**
 * Refresh, logout and the session list (issue 16). Refresh tokens are 256 random bits, so
 * guessing is hopeless and refresh is not rate limited; logout answers 204 whether or not
 * the token named a live session (RFC 7009 section 2.2: revocation is idempotent).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { extractToken } from '../auth/tokens.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireUser } from '../middleware/auth.js';
import { hasBody, readJson } from '../middleware/json-body.js';

export const RefreshBody = z.strictObject({ refreshToken: z.string().min(1).max(200) });

export function sessionRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const user = requireUser(s);

  app.post('/v1/auth/refresh', async (c) => {
    const body = await readJson(c, RefreshBody, s.config.maxJsonDepth);
    return c.json(await s.sessions.refresh(body.refreshToken));
  });

  // This session: by its refresh token (works once the access token has expired), or by
  // the bearer access token. A Content-Type without a body is the bearer form: many HTTP
  // clients send the header on every request.
  app.post('/v1/auth/logout', async (c) => {
    if (hasBody(c.req.raw)) {
      const body = await readJson(c, RefreshBody, s.config.maxJsonDepth);
      await s.sessions.logoutByRefreshToken(body.refreshToken);
      return c.body(null, 204);
    }
    const token = extractToken(c.req.header('authorization'));
    if (!token) throw new AppError('unauthorized', 'send the bearer token, or {"refreshToken"}');
    const claims = await s.tokens.claims(token);
    if (claims.sid !== undefined) await s.sessions.revoke(claims.userId, claims.sid);
    return c.body(null, 204);
  });

  app.post('/v1/auth/logout-all', user, async (c) => {
    await s.sessions.revokeAll(c.get('userId'));
    return c.body(null, 204);
  });

  app.get('/v1/me/sessions', user, async (c) => c.json({ sessions: await s.sessions.list(c.get('userId'), c.get('sid')) }));

  app.delete('/v1/me/sessions/:id', user, async (c) => {
    // Another user's session answers like a missing one: ids are not probeable.
    if (!(await s.sessions.revoke(c.get('userId'), c.req.param('id')))) throw new AppError('not_found', 'no such session');
    return c.body(null, 204);
  });

  return app;
}
