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
import { setTimeout as sleep } from 'node:timers/promises';
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
/**
 * How long a retry waits for the first request's answer: the key commits with the message,
 * but `live` is known only after the fan-out. Past it (the first request died between its
 * commit and its answer) the retry answers `live: 0`.
 */
const FIRST_ANSWER_WAIT_MS = 2000;
const FIRST_ANSWER_POLL_MS = 20;

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
    const devices: DeviceRow[] = userId !== undefined ? await s.devices.list(userId) : [];
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
      const queued = await s.outbox.create({ id, target, payload, live: 0, devices, offset: offset ?? null, force: n.push, dueAt }, tx);
      const accepted: Accepted = { id, ...(offset === undefined ? {} : { offset }), live: 0, queued };
      // Without `live` until the fan-out has counted it: a retry meanwhile waits for it.
      if (key !== undefined) await s.history.keys.complete(tx, 'notify', key, JSON.stringify({ ...accepted, live: undefined }));
      return accepted;
    };
    const result = await s.db.transaction().execute(commit);
    if (result === 'conflict') throw new AppError('idempotency_conflict', 'this Idempotency-Key was used with another body');
    if ('replay' in result) return c.json(await firstAnswer(s, key!, result.replay), 202);

    // Test-only (FAULT_CRASH_AFTER_COMMIT): die in the window between the commit and the fan-out.
    if (s.config.testMode && s.config.faultCrashAfterCommit) process.kill(process.pid, 'SIGKILL');
    const live = await s.hub.publish({ topic, dataJson, from: null, offset: result.offset ?? null, ts });
    if (result.queued > 0) {
      // Nobody holds the user anywhere: no receipt can come, push now.
      if (live === 0 || n.push) {
        await s.outbox.dueNow(id);
        s.push.kick();
      } else if (result.offset === undefined) {
        // No history, so no receipt can cancel the fallback: delivered live is delivered.
        await s.outbox.receivedLive(id);
      }
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

/** The first request's answer to a retry with its key, once it has one (see FIRST_ANSWER_WAIT_MS). */
async function firstAnswer(s: Services, key: string, stored: string): Promise<Accepted> {
  const deadline = Date.now() + FIRST_ANSWER_WAIT_MS;
  let answer = JSON.parse(stored) as Partial<Accepted>;
  while (answer.live === undefined && Date.now() < deadline) {
    await sleep(FIRST_ANSWER_POLL_MS);
    const now = await s.history.keys.response('notify', key);
    if (now !== null) answer = JSON.parse(now) as Partial<Accepted>;
  }
  return { ...answer, live: answer.live ?? 0 } as Accepted;
}
