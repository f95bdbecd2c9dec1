/** Liveness, readiness and Prometheus metrics. */
import { Hono } from 'hono';
import { isAdminToken } from '../middleware/auth.js';
import { clientIp, isLoopback, type AppEnv, type Services } from '../context.js';
import { AppError } from '../errors.js';
import { extractToken } from '../auth/tokens.js';

export function healthRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => {
    if (!s.lifecycle.isReady) throw new AppError('not_ready', s.lifecycle.phase);
    return c.json({ status: 'ready' });
  });
  app.get('/metrics', async (c) => {
    const ip = clientIp(s.config.trustProxy, c.env.ip, c.req.header('x-forwarded-for'));
    if (!isLoopback(ip) && !isAdminToken(extractToken(c.req.header('authorization')), s.config.adminToken)) {
      throw new AppError('forbidden', 'metrics answer on loopback or with the admin token');
    }
    return c.body(await s.metrics.render(), 200, { 'Content-Type': s.metrics.registry.contentType });
  });
  // Reached only without an Upgrade header: the engines take real upgrades before the app.
  app.get('/v1/ws', () => {
    throw new AppError('upgrade_required', 'this endpoint speaks WebSocket', { headers: { Upgrade: 'websocket' } });
  });
  return app;
}
