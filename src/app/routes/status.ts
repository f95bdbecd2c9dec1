/** `/status` (live page) and `/status.json`: loopback, or the admin token elsewhere. */
import { Hono } from 'hono';
import type { WorkerFigures } from '../../process/supervisor.js';
import { STATUS_HTML } from '../status-page.js';
import type { LiveStats } from '../../observability/live-stats.js';
import type { Gateway } from '../../realtime/gateway.js';
import type { AppEnv, Services } from '../context.js';
import { requireLoopbackOrAdmin } from '../middleware/auth.js';
import { runtimeInEffect } from '../../process/runtime-memory.js';

export interface StatusSources {
  gateway: Gateway;
  live: LiveStats;
  cluster: () => WorkerFigures[];
}

export function statusRoutes(s: Services, src: StatusSources): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const started = Date.now();
  app.use('/status*', requireLoopbackOrAdmin(s, 'status pages', 'admin'));
  app.get('/status', (c) => c.html(STATUS_HTML));
  app.get('/status.json', async (c) => {
    const mem = process.memoryUsage();
    const self = {
      name: 'this process',
      pid: process.pid,
      connections: src.gateway.stats.open,
      rssBytes: mem.rss,
      heapBytes: mem.heapUsed,
      rps: src.live.rps,
      p99Ms: src.live.p99Ms,
    };
    const cluster = src.cluster();
    const processes =
      cluster.length > 0
        ? cluster.map((w) => (w.pid === process.pid ? { ...self, name: `worker ${w.index} (this)` } : { name: `worker ${w.index}`, pid: w.pid, connections: w.connections, rssBytes: w.rssBytes, heapBytes: w.heapBytes, rps: w.rps, p99Ms: w.p99Ms }))
        : [self];
    const sum = (k: 'connections' | 'rssBytes' | 'heapBytes' | 'rps') => processes.reduce((a, p) => a + p[k], 0);
    return c.json({
      engine: s.config.engine,
      uptimeS: (Date.now() - started) / 1000,
      total: { connections: sum('connections'), rssBytes: sum('rssBytes'), heapBytes: sum('heapBytes'), rps: sum('rps'), p99Ms: Math.max(...processes.map((p) => p.p99Ms)) },
      loopDelayP99Ms: s.metrics.loop.percentile(99) / 1e6,
      /** This process's heap bound, semi-space and --smol (runtime-memory.ts). */
      runtime: await runtimeInEffect(),
      refusedUpgrades: [...src.gateway.stats.refused.values()].reduce((a, b) => a + b, 0),
      processes,
    });
  });
  return app;
}
