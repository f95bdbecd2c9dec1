/** `POST /v1/notify` (admin token): deliver to a user's open connections or to a topic. */
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import type { Hub } from '../../realtime/hub.js';
import { isValidTopic } from '../../realtime/protocol.js';
import { extractToken } from '../auth/tokens.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../errors.js';
import { isAdminToken } from '../middleware/auth.js';
import { readJson } from '../middleware/json-body.js';

export const NotifyBody = z
  .strictObject({
    userId: z.string().min(1).max(64).optional(),
    topic: z.string().refine(isValidTopic, 'invalid topic name').optional(),
    title: z.string().min(1).max(200),
    body: z.string().max(2000).default(''),
    data: z.record(z.string(), z.unknown()).optional(),
    push: z.boolean().default(false),
  })
  .refine((b) => (b.userId === undefined) !== (b.topic === undefined), {
    message: 'exactly one of userId and topic is required',
    path: ['userId'],
  });

export function notifyRoutes(s: Services, hub: Hub): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post('/v1/notify', async (c) => {
    if (!isAdminToken(extractToken(c.req.header('authorization')), s.config.adminToken)) {
      throw new AppError('forbidden', 'the admin token is required');
    }
    const n = await readJson(c, NotifyBody);
    const id = randomUUID();
    const payload = { id, title: n.title, body: n.body, data: n.data ?? {} };
    const live = n.userId !== undefined ? hub.sendToUser(n.userId, payload) : hub.publish(n.topic!, payload);
    return c.json({ id, live }, 202);
  });
  return app;
}
