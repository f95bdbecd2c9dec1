/** Push targets of the signed-in user. */
import { Hono } from 'hono';
import { z } from 'zod';
import { toPublicDevice } from '../../store/devices.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../errors.js';
import { requireUser } from '../middleware/auth.js';
import { readJson } from '../middleware/json-body.js';

const base64url = (bytes: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]+=*$/, 'expected base64url')
    .refine((v) => Buffer.from(v, 'base64url').length === bytes, `expected ${bytes} bytes, base64url`);

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;

/** The JSON of a browser PushSubscription (RFC 8030 endpoint, RFC 8291 keys). */
export const WebSubscription = z.strictObject({
  endpoint: z
    .url()
    .max(2048)
    .refine((u) => {
      const url = new URL(u);
      return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
    }, 'endpoint must be an https URL'),
  expirationTime: z.number().nullable().optional(),
  keys: z.strictObject({ p256dh: base64url(65), auth: base64url(16) }),
});

export const DeviceBody = z.discriminatedUnion('platform', [
  z.strictObject({ platform: z.literal('ios'), token: z.string().regex(/^[0-9a-fA-F]{64,200}$/, 'an APNs token is 64+ hex digits') }),
  z.strictObject({
    platform: z.literal('android'),
    token: z.string().min(20).max(4096).regex(/^[A-Za-z0-9_:.-]+$/, 'not an FCM registration token'),
  }),
  z.strictObject({ platform: z.literal('web'), token: WebSubscription }),
]);

export function deviceRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const user = requireUser(s);
  app.post('/v1/devices', user, async (c) => {
    const body = await readJson(c, DeviceBody, s.config.maxJsonDepth);
    const row =
      body.platform === 'web'
        ? await s.devices.upsert(c.get('userId'), 'web', body.token.endpoint, JSON.stringify(body.token.keys))
        : await s.devices.upsert(c.get('userId'), body.platform, body.token, null);
    return c.json({ device: toPublicDevice(row) }, 201);
  });
  app.get('/v1/devices', user, async (c) => {
    const rows = await s.devices.list(c.get('userId'));
    return c.json({ devices: rows.map(toPublicDevice) });
  });
  app.delete('/v1/devices/:id', user, async (c) => {
    // Another user's device answers like a missing one: ids are not probeable.
    if (!(await s.devices.remove(c.get('userId'), c.req.param('id')))) throw new AppError('not_found', 'no such device');
    return c.body(null, 204);
  });
  return app;
}
