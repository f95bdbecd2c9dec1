/**
 * The signed-in owner's account: change the password (with the current one; every other
 * session is revoked), change the email (the new address takes effect once verified by
 * mail), delete the account (with the password, or a session opened within FRESH_LOGIN_S).
 */
import { Hono, type Context } from 'hono';
import { decodeJwt } from 'jose';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { toPublicUser, type UserRow } from '../../store/users.js';
import { extractToken } from '../auth/tokens.js';
import { checkNewPassword, NewPassword, PresentedPassword } from '../auth/password-policy.js';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import type { AppEnv, Services } from '../context.js';
import { requireUser } from '../middleware/auth.js';
import { hasBody, readJson } from '../middleware/json-body.js';
import { RateLimiter } from '../middleware/rate-limit.js';
import { email } from './auth.js';
import { mailLimits } from './password.js';

export const ChangePasswordBody = z.strictObject({ currentPassword: PresentedPassword, newPassword: NewPassword });
export const ChangeEmailBody = z.strictObject({ email, password: PresentedPassword });
export const DeleteMeBody = z.strictObject({ password: PresentedPassword.optional() });

/** `iat` of the request's bearer token (epoch seconds), which `requireUser` has verified. */
function bearerIssuedAt(c: Context<AppEnv>): number {
  const { iat } = decodeJwt(extractToken(c.req.header('authorization'))!);
  return typeof iat === 'number' ? iat : 0;
}

export function accountRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const user = requireUser(s);
  const limits = mailLimits(s);
  // Guessing the current password with a stolen token counts with login attempts on the email.
  const byEmail = new RateLimiter(s.limits, 'auth-email', s.config.authRatePerMin, 60_000);

  const owner = async (c: Context<AppEnv>): Promise<UserRow> => {
    const row = await s.users.byId(c.get('userId'));
    if (!row) throw new AppError('invalid_token', "the token's user no longer exists");
    return row;
  };
  const checkPassword = async (row: UserRow, password: string, field = 'password') => {
    await byEmail.hit(row.email);
    if (!(await verifyPassword(password, row.password_hash))) throw new AppError('wrong_password', 'the current password is wrong', { field });
  };

  app.post('/v1/me/password', user, async (c) => {
    const body = await readJson(c, ChangePasswordBody, s.config.maxJsonDepth);
    const row = await owner(c);
    await checkPassword(row, body.currentPassword, 'currentPassword');
    try {
      await checkNewPassword(body.newPassword, row.email);
    } catch (err) {
      throw err instanceof AppError ? new AppError(err.code, err.message, { field: 'newPassword' }) : err;
    }
    if (!(await s.accounts.setPassword(row.id, await hashPassword(body.newPassword)))) {
      throw new AppError('invalid_token', "the token's user no longer exists");
    }
    await s.sessions.revokeAll(row.id, { exceptSid: c.get('sid') });
    return c.body(null, 204);
  });

  app.post('/v1/me/email', user, async (c) => {
    const body = await readJson(c, ChangeEmailBody, s.config.maxJsonDepth);
    const row = await owner(c);
    await checkPassword(row, body.password);
    if (body.email === row.email) throw new AppError('validation_failed', 'email: this is already the account\'s address', { field: 'email' });
    await limits.mailTo(body.email);
    const taken = (await s.users.byEmail(body.email)) !== undefined;
    if (taken && !s.config.signupEnumerationSafe) throw new AppError('email_taken', 'an account with this email exists');
    // Enumeration-safe: a taken address is answered and recorded exactly like a free one; its
    // owner gets "you already have an account" instead of the link, so the change never completes.
    const token = await s.accounts.requestEmailChange(row.id, body.email, s.config.emailVerifyTtlS * 1000);
    if (token === null) throw new AppError('invalid_token', "the token's user no longer exists");
    if (taken) s.accountMail.alreadyRegistered(body.email);
    else s.accountMail.emailChange(body.email, token);
    return c.json({ user: toPublicUser((await s.users.byId(row.id)) ?? row) }, 202);
  });

  app.delete('/v1/me', user, async (c) => {
    const body = hasBody(c.req.raw) ? await readJson(c, DeleteMeBody, s.config.maxJsonDepth) : {};
    const row = await owner(c);
    if (body.password !== undefined) {
      await checkPassword(row, body.password);
    } else {
      // A refresh issues a new access token: its `iat` says when the session last refreshed,
      // not when its owner last proved who they are. The session's start (its login) does.
      const sid = c.get('sid');
      const session = sid === undefined ? undefined : (await s.sessions.list(row.id, sid)).find((x) => x.current);
      const loginS = session ? Date.parse(session.createdAt) / 1000 : bearerIssuedAt(c);
      const ageS = Date.now() / 1000 - loginS;
      if (s.config.freshLoginS === 0 || ageS > s.config.freshLoginS) {
        throw new AppError('reauthentication_required', `send the password, or log in again (a token at most ${s.config.freshLoginS} s old)`);
      }
    }
    await s.accountDeletion.delete(row.id);
    return c.body(null, 204);
  });

  return app;
}
