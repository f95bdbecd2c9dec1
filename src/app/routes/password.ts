/**
 * Password reset by mail: `forgot` answers 202 whatever the address (the lookup and the mail
 * happen after the answer, see account-mail.ts), rate limited per client address and per
 * email; `reset` takes the mailed single-use token, sets the new password and revokes every
 * session of the account (its sockets close with 4003 on every process).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { limitKey } from '../../lib/client-address.js';
import { AppError } from '../../errors.js';
import { checkNewPassword, NewPassword } from '../auth/password-policy.js';
import { hashPassword } from '../auth/passwords.js';
import { clientIp, type AppEnv, type Services } from '../context.js';
import { readJson } from '../middleware/json-body.js';
import { RateLimiter } from '../middleware/rate-limit.js';
import { email } from './auth.js';

export const ForgotBody = z.strictObject({ email });
/** A mailed token: 43 characters of base64url (anything else is refused by the lookup). */
export const MailToken = z.string().min(1).max(128);
export const ResetBody = z.strictObject({ token: MailToken, password: NewPassword });

/** The limiters of the mail flows: per client address (attempts) and per address mailed. */
export function mailLimits(s: Services) {
  const byIp = new RateLimiter(s.limits, 'mail-ip', s.config.authRatePerMin, 60_000);
  const byAddress = new RateLimiter(s.limits, 'mail-address', s.config.mailPerAddressPerHour, 3_600_000);
  return {
    /** Count an attempt from the client's address. */
    attempt: (c: { env: { ip: string }; req: { header(name: string): string | undefined } }) =>
      byIp.hit(limitKey(clientIp(s.config.trustProxy, c.env.ip, c.req.header('x-forwarded-for')))),
    /** Count a mail to `address` (known or not: the count must not tell them apart). */
    mailTo: (address: string) => byAddress.hit(address),
  };
}

export function passwordRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const limits = mailLimits(s);

  app.post('/v1/auth/password/forgot', async (c) => {
    const body = await readJson(c, ForgotBody, s.config.maxJsonDepth);
    await limits.attempt(c);
    await limits.mailTo(body.email);
    s.accountMail.passwordReset(body.email);
    return c.body(null, 202);
  });

  app.post('/v1/auth/password/reset', async (c) => {
    const body = await readJson(c, ResetBody, s.config.maxJsonDepth);
    await limits.attempt(c);
    await checkNewPassword(body.password);
    const result = await s.accounts.resetPassword(body.token, await hashPassword(body.password));
    if (result === 'invalid_token' || result === 'email_taken') {
      throw new AppError('invalid_one_time_token', 'this reset link is unknown, used or expired: ask for a new one', { field: 'token' });
    }
    await s.sessions.revokeAll(result);
    return c.body(null, 204);
  });

  return app;
}
