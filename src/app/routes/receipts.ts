/**
 * `POST /v1/receipts {topic, offset}` (bearer): the `recv` frame over HTTP, for an app woken
 * by a push that reads its messages before it opens a socket. Cumulative, capped at the
 * topic's head by the store; a receipt covering a notification cancels its pending pushes.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { isValidTopic } from '../../realtime/protocol.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireUser } from '../middleware/auth.js';
import { readJson } from '../middleware/json-body.js';

export const ReceiptBody = z.strictObject({
  topic: z.string().refine(isValidTopic, 'invalid topic name'),
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

export function receiptRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post('/v1/receipts', requireUser(s), async (c) => {
    const { topic, offset } = await readJson(c, ReceiptBody, s.config.maxJsonDepth);
    const userId = c.get('userId');
    if (topic.startsWith('user:') && topic !== `user:${userId}`) throw new AppError('forbidden', 'only your own user topic');
    await s.receipts.record([{ userId, topic, offset }]);
    return c.body(null, 204);
  });
  return app;
}
