/**
 * Sign in with Apple and Google: `POST /v1/auth/apple` and `POST /v1/auth/google` take the
 * provider's ID token (and Apple's authorization code) and answer as login does; 201 when
 * the sign-in created the account. Rate limited per client address like login.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { limitKey } from '../../lib/client-address.js';
import type { Provider } from '../auth/id-tokens.js';
import { clientIp, type AppEnv, type Services } from '../context.js';
import { readJson } from '../middleware/json-body.js';
import { RateLimiter } from '../middleware/rate-limit.js';
import { labelOf, sessionLabel } from './auth.js';

const idToken = z.string().min(1).max(8192);
const nonce = z.string().min(1).max(256).optional();

export const GoogleSignInBody = z.strictObject({ idToken, nonce, label: sessionLabel });
export const AppleSignInBody = z.strictObject({
  idToken,
  nonce,
  label: sessionLabel,
  code: z.string().min(1).max(1024).optional(),
  displayName: z.string().trim().min(1).max(100).optional(),
});

export function socialRoutes(s: Services): Hono<AppEnv> {
  const byIp = new RateLimiter(s.limits, 'social-ip', s.config.authRatePerMin, 60_000);
  const app = new Hono<AppEnv>();

  const route = (provider: Provider, schema: typeof AppleSignInBody | typeof GoogleSignInBody) =>
    app.post(`/v1/auth/${provider}`, async (c) => {
      const ip = clientIp(s.config.trustProxy, c.env.ip, c.req.header('x-forwarded-for'));
      const body = await readJson(c, schema, s.config.maxJsonDepth);
      await byIp.hit(limitKey(ip));
      const { user, created } = await s.social.signIn(provider, body);
      return c.json(await s.sessions.start(user.id, { label: labelOf(body.label, c.req.header('user-agent')), user }), created ? 201 : 200);
    });
  route('apple', AppleSignInBody);
  route('google', GoogleSignInBody);
  return app;
}
