/** Liveness, readiness and Prometheus metrics. */
import { Hono } from 'hono';
import { requireLoopbackOrAdmin } from '../middleware/auth.js';
import type { AppEnv, Services } from '../context.js';
import { AppError, errorResponse } from '../../errors.js';

export function healthRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (!s.lifecycle.isReady) throw new AppError('not_ready', s.lifecycle.phase);
    // Answered here rather than thrown: the error handler logs every 5xx, and a balancer
    // probing an unreachable store each second would fill the log (the probe logs changes).
    if (!(await s.storeProbe.reachable())) {
      return errorResponse('store_unavailable', 'the database does not answer', undefined, { 'Retry-After': '1' });
    }
    return c.json({ status: 'ready' });
  });
  app.get('/metrics', requireLoopbackOrAdmin(s, 'metrics'), async (c) => {
    return c.body(await s.metrics.render(), 200, { 'Content-Type': s.metrics.contentType });
  });
  // Reached only without an Upgrade header: the engines take real upgrades before the app.
  app.get('/v1/ws', () => {
    throw new AppError('upgrade_required', 'this endpoint speaks WebSocket', { headers: { Upgrade: 'websocket' } });
  });
  return app;
}
