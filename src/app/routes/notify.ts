/**
 * `POST /v1/notify` (admin token). To a user: live over every open connection through the
 * Hub; if none is open, or when `push` is true, queued in the durable push outbox for each
 * device. To a topic: live to its subscribers. 202 only after the rows are committed.
 */
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { isValidTopic } from '../../realtime/protocol.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireAdmin } from '../middleware/auth.js';
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

export function notifyRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post('/v1/notify', requireAdmin(s), async (c) => {
    const n = await readJson(c, NotifyBody, s.config.maxJsonDepth);
    const id = randomUUID();
    const payload = { title: n.title, body: n.body, data: n.data ?? {} };
    const frame = { topic: '', dataJson: JSON.stringify({ id, ...payload }), from: null, offset: null, ts: Date.now() };
    if (n.topic !== undefined) {
      const live = await s.hub.publish({ ...frame, topic: n.topic });
      await s.outbox.create(id, { topic: n.topic }, payload, live, []);
      return c.json({ id, live, queued: 0 }, 202);
    }
    const userId = n.userId!;
    if (!(await s.users.byId(userId))) throw new AppError('not_found', 'no such user');
    const live = await s.hub.publish({ ...frame, topic: `user:${userId}` });
    const devices = live === 0 || n.push ? await s.devices.list(userId) : [];
    const queued = await s.outbox.create(id, { userId }, payload, live, devices);
    if (queued > 0) s.push.kick();
    return c.json({ id, live, queued }, 202);
  });
  return app;
}
