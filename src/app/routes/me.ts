/** The signed-in user's profile. */
import { Hono } from 'hono';
import { z } from 'zod';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireUser } from '../middleware/auth.js';
import { readJson } from '../middleware/json-body.js';
import { toPublicUser } from '../../store/users.js';

export const PatchMeBody = z
  .strictObject({
    displayName: z.string().trim().min(1).max(100).nullable().optional(),
    avatarUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .nullable()
      .optional(),
    locale: z
      .string()
      .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'expected a BCP 47 tag such as en or pt-BR')
      .nullable()
      .optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'at least one field is required');

export function meRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const user = requireUser(s);
  app.get('/v1/me', user, async (c) => {
    const user = await s.users.byId(c.get('userId'));
    if (!user) throw new AppError('invalid_token', "the token's user no longer exists");
    return c.json({ user: toPublicUser(user) });
  });
  app.patch('/v1/me', user, async (c) => {
    const body = await readJson(c, PatchMeBody, s.config.maxJsonDepth);
    const user = await s.users.updateProfile(c.get('userId'), {
      ...(body.displayName !== undefined && { display_name: body.displayName }),
      ...(body.avatarUrl !== undefined && { avatar_url: body.avatarUrl }),
      ...(body.locale !== undefined && { locale: body.locale }),
    });
    if (!user) throw new AppError('invalid_token', "the token's user no longer exists");
    return c.json({ user: toPublicUser(user) });
  });
  return app;
}
