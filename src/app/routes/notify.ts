/**
 * `POST /v1/notify` (admin token) and `GET /v1/notifications/:id`.
 *
 * To a user: the message is committed to `user:<id>`'s log together with one push row per
 * device, in one transaction, then fanned out to every connection of the user. The push rows
 * are due at PUSH_FALLBACK_MS; a receipt (`recv`) covering the offset before then cancels
 * them, and when no connection of the user was held anywhere they are made due at once.
 * `push: true` pushes whatever the receipts say. To a topic: logged (when its namespace
 * keeps history) and fanned out, never pushed. An `Idempotency-Key` makes a retry answer the
 * first response and create nothing.
 */
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { isValidTopic } from '../../realtime/protocol.js';
import { contentHash } from '../../realtime/store-history.js';
import type { Db } from '../../store/db.js';
import type { DeviceRow } from '../../store/devices.js';
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

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

interface Accepted {
  id: string;
  offset?: number;
  live: number;
  queued: number;
}

export function notifyRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post('/v1/notify', requireAdmin(s), async (c) => {
    const n = await readJson(c, NotifyBody, s.config.maxJsonDepth);
    const key = c.req.header('idempotency-key');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw new AppError('validation_failed', 'Idempotency-Key: 1-128 printable ASCII characters', { field: 'Idempotency-Key' });
    }
    const userId = n.userId;
    if (userId !== undefined && !(await s.users.byId(userId))) throw new AppError('not_found', 'no such user');
    const topic = n.topic ?? `user:${userId}`;
    if (!s.channels.rules(topic)) throw new AppError('unknown_namespace', 'no namespace is configured for this topic');
    const id = randomUUID();
    const ts = Date.now();
    const payload = { title: n.title, body: n.body, data: n.data ?? {} };
    const dataJson = JSON.stringify({ id, ...payload });
    const durable = s.channels.durable(topic);
    // Read before the transaction: on SQLite a write must open it (see store/message-log.ts).
    const devices: DeviceRow[] = userId !== undefined && (durable || n.push) ? await s.devices.list(userId) : [];
    const hash = contentHash(JSON.stringify(n));

    // Commit the message, the notification and its push rows together (the key too).
    const commit = async (tx: Db): Promise<Accepted | { replay: string } | 'conflict'> => {
      if (key !== undefined) {
        const claim = await s.history.keys.begin(tx, 'notify', key, hash);
        if (claim.state === 'pending' || (claim.state === 'done' && claim.hash !== hash)) return 'conflict';
        if (claim.state === 'done') return { replay: claim.response };
      }
      const offset = durable ? (await s.history.log.appendIn(tx, [{ topic, data: dataJson, from: null, ts }]))[0] : undefined;
      const target = userId !== undefined ? { userId } : { topic };
      const dueAt = ts + (n.push ? 0 : s.config.pushFallbackMs);
      const queued = await s.outbox.createIn(tx, id, target, payload, 0, devices, { offset: offset ?? null, force: n.push, dueAt });
      const accepted: Accepted = { id, ...(offset === undefined ? {} : { offset }), live: 0, queued };
      if (key !== undefined) await s.history.keys.complete(tx, 'notify', key, JSON.stringify(accepted));
      return accepted;
    };
    const result = await s.db.transaction().execute(commit);
    if (result === 'conflict') throw new AppError('idempotency_conflict', 'this Idempotency-Key was used with another body');
    if ('replay' in result) return c.json(JSON.parse(result.replay) as Accepted, 202);

    const live = await s.hub.publish({ topic, dataJson, from: null, offset: result.offset ?? null, ts });
    // Nobody holds the user anywhere: no receipt can come, push now.
    if (result.queued > 0 && (live === 0 || n.push)) {
      await s.outbox.dueNow(id);
      s.push.kick();
    }
    const accepted = { ...result, live };
    if (key !== undefined) await s.history.keys.complete(s.db, 'notify', key, JSON.stringify(accepted));
    return c.json(accepted, 202);
  });

  app.get('/v1/notifications/:id', requireAdmin(s), async (c) => {
    const status = await s.outbox.status(c.req.param('id'));
    if (!status) throw new AppError('not_found', 'no such notification');
    return c.json(status);
  });
  return app;
}
