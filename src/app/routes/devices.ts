/** Push targets of the signed-in user. */
import { Hono } from 'hono';
import { z } from 'zod';
import { forbiddenEndpoint } from '../../push/endpoint-policy.js';
import { toPublicDevice } from '../../store/devices.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireUser } from '../middleware/auth.js';
import { readJson } from '../middleware/json-body.js';

const base64url = (bytes: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]+=*$/, 'expected base64url')
    .refine((v) => Buffer.from(v, 'base64url').length === bytes, `expected ${bytes} bytes, base64url`);

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;

/**
 * The JSON of a browser PushSubscription (RFC 8030 endpoint, RFC 8291 keys). Plain http is
 * only for loopback, which the route then allows in test mode only (endpoint-policy.ts).
 */
export const WebSubscription = z.strictObject({
  endpoint: z
    .url()
    .max(2048)
    .refine((u) => {
      // zod runs this refinement even when its own URL check has failed, and some strings
      // that check lets through (`https://1.2.3.4.5/`) are still not URLs to this runtime.
      const url = URL.canParse(u) ? new URL(u) : null;
      return url !== null && (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname)));
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
  const max = s.config.maxDevicesPerUser;
  app.post('/v1/devices', user, async (c) => {
    const body = await readJson(c, DeviceBody, s.config.maxJsonDepth);
    const userId = c.get('userId');
    if (body.platform === 'web') {
      // No DNS here: a name is resolved and checked again on every send (safe-lookup.ts).
      const reason = forbiddenEndpoint(new URL(body.token.endpoint), s.config.testMode);
      if (reason) {
        throw new AppError('push_endpoint_forbidden', `the endpoint is on a ${reason} address`, { field: 'token.endpoint' });
      }
    }
    const device =
      body.platform === 'web'
        ? await s.devices.upsert(userId, 'web', body.token.endpoint, JSON.stringify(body.token.keys), max)
        : await s.devices.upsert(userId, body.platform, body.token, null, max);
    return c.json({ device: toPublicDevice(device) }, 201);
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
