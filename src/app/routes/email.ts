/**
 * Email verification: `verify` consumes a mailed token (signup's, a resend's, or a change of
 * email's, which then takes effect); `verify/resend` mails a new link to an unverified
 * account and answers 202 whatever the address.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { toPublicUser } from '../../store/users.js';
import type { AppEnv, Services } from '../context.js';
import { readJson } from '../middleware/json-body.js';
import { email } from './auth.js';
import { mailLimits, MailToken } from './password.js';

export const VerifyBody = z.strictObject({ token: MailToken });
export const ResendBody = z.strictObject({ email });

export function emailRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const limits = mailLimits(s);

  app.post('/v1/auth/verify', async (c) => {
    const body = await readJson(c, VerifyBody, s.config.maxJsonDepth);
    await limits.attempt(c);
    const result = await s.accounts.verifyEmail(body.token);
    if (result === 'email_taken') throw new AppError('email_taken', 'another account has this address now');
    if (result === 'invalid_token') {
      throw new AppError('invalid_one_time_token', 'this link is unknown, used or expired: ask for a new one', { field: 'token' });
    }
    return c.json({ user: toPublicUser(result) });
  });

  app.post('/v1/auth/verify/resend', async (c) => {
    const body = await readJson(c, ResendBody, s.config.maxJsonDepth);
    await limits.attempt(c);
    await limits.mailTo(body.email);
    s.accountMail.resendVerification(body.email);
    return c.body(null, 202);
  });

  return app;
}
