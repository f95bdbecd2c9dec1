/**
 * Signup and login: each opens a device session (auth/sessions.ts) and answers
 * `{token, refreshToken, expiresIn, user}`. Both are rate limited per client address and
 * per email, per box. Refresh and logout are in sessions.ts.
 *
 * Signup mails a verification link. With REQUIRE_EMAIL_VERIFICATION it opens no session
 * (202: the link verifies, then the user logs in) and login refuses an unverified address;
 * with SIGNUP_ENUMERATION_SAFE too, a taken address answers the same 202 and its owner gets
 * a mail saying they already have an account.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import { checkNewPassword, NewPassword, PresentedPassword } from '../auth/password-policy.js';
import { limitKey } from '../../lib/client-address.js';
import { clientIp, type AppEnv, type Services } from '../context.js';
import { AppError } from '../../errors.js';
import { readJson } from '../middleware/json-body.js';
import { RateLimiter } from '../middleware/rate-limit.js';

export const email = z.email().max(254).transform((e) => e.trim().toLowerCase());

/** The device label shown in the session list (`GET /v1/me/sessions`); the User-Agent when absent. */
export const sessionLabel = z.string().trim().min(1).max(100).optional();

export const SignupBody = z.strictObject({
  email,
  password: NewPassword,
  displayName: z.string().trim().min(1).max(100).optional(),
  label: sessionLabel,
});
export const LoginBody = z.strictObject({ email, password: PresentedPassword, label: sessionLabel });

/** A session's label: the one the client gave, else its User-Agent (cut to 100 characters). */
export function labelOf(given: string | undefined, userAgent: string | undefined): string | undefined {
  return given ?? (userAgent ? userAgent.slice(0, 100) : undefined);
}

export function authRoutes(s: Services): Hono<AppEnv> {
  const byIp = new RateLimiter(s.limits, 'auth-ip', s.config.authRatePerMin, 60_000);
  const byEmail = new RateLimiter(s.limits, 'auth-email', s.config.authRatePerMin, 60_000);
  const app = new Hono<AppEnv>();

  const limit = async (ip: string, mail: string) => {
    await byIp.hit(limitKey(ip));
    await byEmail.hit(mail);
  };

  app.post('/v1/auth/signup', async (c) => {
    const ip = clientIp(s.config.trustProxy, c.env.ip, c.req.header('x-forwarded-for'));
    const body = await readJson(c, SignupBody, s.config.maxJsonDepth);
    await limit(ip, body.email);
    await checkNewPassword(body.password, body.email);
    const user = await s.users.create(body.email, await hashPassword(body.password), body.displayName ?? null);
    if (!user && !s.config.signupEnumerationSafe) throw new AppError('email_taken', 'an account with this email exists');
    if (!user) s.accountMail.alreadyRegistered(body.email);
    else s.accountMail.verification(user.id, user.email);
    if (!user || s.config.requireEmailVerification) return c.body(null, 202);
    return c.json(await s.sessions.start(user.id, { label: labelOf(body.label, c.req.header('user-agent')), user }), 201);
  });

  app.post('/v1/auth/login', async (c) => {
    const ip = clientIp(s.config.trustProxy, c.env.ip, c.req.header('x-forwarded-for'));
    const body = await readJson(c, LoginBody, s.config.maxJsonDepth);
    await limit(ip, body.email);
    const user = await s.users.byEmail(body.email);
    if (!(await verifyPassword(body.password, user?.password_hash)) || !user) {
      throw new AppError('invalid_credentials', 'wrong email or password');
    }
    if (s.config.requireEmailVerification && Number(user.email_verified) !== 1) {
      throw new AppError('email_not_verified', 'confirm your email address first: follow the link mailed to it');
    }
    return c.json(await s.sessions.start(user.id, { label: labelOf(body.label, c.req.header('user-agent')), user }));
  });

  return app;
}
