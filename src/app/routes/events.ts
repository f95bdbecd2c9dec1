/** `POST /v1/events`: a batch of app analytics events, committed before the answer. */
import { Hono } from 'hono';
import { z } from 'zod';
import type { AppEnv, Services } from '../context.js';
import { requireUser } from '../middleware/auth.js';
import { readJson } from '../middleware/json-body.js';

const DAY = 86_400_000;
/** Oldest accepted event: the dashboard's widest window. */
const MAX_AGE_MS = 30 * DAY;
/** Tolerated clock skew of a device. */
const MAX_SKEW_MS = 5 * 60_000;
const MAX_PROPS_BYTES = 4096;

const timestamp = z
  .union([z.number().int().positive(), z.iso.datetime({ offset: true })])
  .transform((v) => (typeof v === 'number' ? v : Date.parse(v)))
  .refine((ms) => ms >= Date.now() - MAX_AGE_MS && ms <= Date.now() + MAX_SKEW_MS, {
    message: 'ts must be within the last 30 days (epoch ms or ISO 8601), and not in the future',
  });

export const EventSchema = z.strictObject({
  type: z.string().regex(/^[a-z][a-z0-9_.:-]{0,63}$/, 'type: lowercase letters, digits, _ . : - (1-64)'),
  ts: timestamp,
  props: z
    .record(z.string(), z.unknown())
    .default({})
    .refine((p) => JSON.stringify(p).length <= MAX_PROPS_BYTES, `props over ${MAX_PROPS_BYTES} bytes`),
});

export const EventsBody = z.strictObject({ events: z.array(EventSchema).min(1).max(500) });

export function eventRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post('/v1/events', requireUser(s), async (c) => {
    const body = await readJson(c, EventsBody, s.config.maxJsonDepth);
    const userId = c.get('userId');
    const now = Date.now();
    await s.events.write(
      body.events.map((e) => ({ user_id: userId, type: e.type, ts: e.ts, props: JSON.stringify(e.props), received_at: now })),
    );
    return c.json({ accepted: body.events.length }, 202);
  });
  return app;
}
