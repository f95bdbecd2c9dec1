/**
 * `createApp(config)` builds everything — database, migrations, services, HTTP routes, the
 * WebSocket gateway — without listening. Only main.ts listens, handles signals and exits.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { requestId } from 'hono/request-id';
import type { Config } from '../config.js';
import type { Logger } from '../ops/logger.js';
import { Lifecycle } from '../ops/lifecycle.js';
import { createMetrics, exposeIntegers, type Metrics } from '../ops/metrics.js';
import { Gateway } from '../realtime/gateway.js';
import type { Limits } from '../lib/limits.js';
import { LocalLimits } from '../lib/local-limits.js';
import { SupervisorLimits } from '../lib/supervisor-limits.js';
import type { WorkerFigures } from '../engine/cluster.js';
import { openDb, type Db } from '../store/db.js';
import { migrateToLatest } from '../store/migrations.js';
import { UserStore } from '../store/users.js';
import { DeviceStore } from '../store/devices.js';
import { EventWriter } from '../store/events.js';
import { OutboxStore } from '../store/outbox.js';
import { createPushWorker } from '../push/index.js';
import { openApiDocument } from './openapi.js';
import { LiveStats } from '../ops/live-stats.js';
import { LoopMonitor } from '../ops/loop-monitor.js';
import { statusRoutes } from './routes/status.js';
import { requireAdmin } from './middleware/auth.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { deviceRoutes } from './routes/devices.js';
import { eventRoutes } from './routes/events.js';
import { resolveJwtSecret } from './auth/secret.js';
import { TokenService } from './auth/tokens.js';
import { KnownUsers } from './auth/known-users.js';
import { StoreProbe } from './store-probe.js';
import type { AppEnv, Bindings, Services } from './context.js';
import { AppError } from './errors.js';
import { handleError, jsonError } from './error-handler.js';
import { compress } from './middleware/compress.js';
import { observe } from './middleware/observe.js';
import { authRoutes } from './routes/auth.js';
import { healthRoutes } from './routes/health.js';
import { meRoutes } from './routes/me.js';
import { notifyRoutes } from './routes/notify.js';

export interface OneboxApp {
  fetch(req: Request, env: Bindings): Response | Promise<Response>;
  gateway: Gateway;
  lifecycle: Lifecycle;
  metrics: Metrics;
  db: Db;
  /** Registered routes (for the OpenAPI coverage test). */
  routes(): Array<{ method: string; path: string }>;
  /** The supervisor's table of every worker (WORKERS>1). */
  setClusterTable(t: WorkerFigures[]): void;
  live: LiveStats;
  /** Start the push outbox worker and the monitors (main.ts does, once listening). */
  startBackground(): void;
  /** Release timers and the database. */
  close(): Promise<void>;
}

/** True when the request announces a body (Content-Length above 0, or chunked). */
function hasBody(req: Request): boolean {
  const length = req.headers.get('content-length');
  return length !== null ? length !== '0' : req.headers.has('transfer-encoding');
}

/**
 * @param limits the box's limit tables: the supervisor's (SupervisorLimits) in a WORKERS>1
 *   worker. @default in-process counters
 */
export async function createApp(config: Config, log: Logger, limits: Limits = new LocalLimits()): Promise<OneboxApp> {
  if (config.testMode) {
    log.warn(
      { testMode: true, faultStoreDelayMs: config.faultStoreDelayMs, faultBlockRoute: config.faultBlockRoute },
      'TEST_MODE=true: test-only behaviour is on (push endpoints on loopback, FAULT_* fault injection); never run production like this',
    );
  }
  const db = await openDb(config);
  await migrateToLatest(db);
  const metrics = createMetrics();
  const lifecycle = new Lifecycle();
  const users = new UserStore(db);
  const knownUsers = new KnownUsers((id) => users.exists(id), config.userCheckTtlMs);
  const tokens = new TokenService(resolveJwtSecret(config.jwtSecret, config.dataDir, log), config.jwtTtlS, (id) =>
    knownUsers.check(id),
  );
  const gateway = new Gateway(config, tokens, log, limits);
  const backplane = config.redisUrl
    ? new (await import('../realtime/backplane.js')).RedisHub(config.redisUrl, gateway.local, gateway.registry, log)
    : null;
  if (backplane) {
    gateway.hub = backplane;
    backplane.exposeMetrics(metrics.registry);
  }
  const devices = new DeviceStore(db);
  const outbox = new OutboxStore(db);
  const s: Services = {
    config,
    log,
    db,
    users,
    tokens,
    knownUsers,
    storeProbe: new StoreProbe(() => users.ping(), config.readyStoreTimeoutMs, log),
    metrics,
    lifecycle,
    devices,
    events: new EventWriter(db),
    outbox,
    hub: gateway.hub,
    limits,
    push: await createPushWorker(config, outbox, devices, log),
    dashboardAborts: { profile: 0, metrics: 0 },
    live: new LiveStats(),
    loopMonitor: new LoopMonitor(log, config.blockWarnMs),
  };
  gateway.activity = (label) => s.loopMonitor.enter(label);
  exposeIntegers(metrics.registry, 'counter', 'onebox_event_loop_stalls_total', `Event-loop stalls over BLOCK_WARN_MS`, () => s.loopMonitor.stalls);
  gateway.exposeMetrics(metrics.registry);
  exposeIntegers(metrics.registry, 'counter', 'onebox_dashboard_loads_aborted_total', 'Dashboard loads that observed an abort',
    () => Object.entries(s.dashboardAborts).map(([load, n]) => [{ load }, n] as const), ['load']);
  exposeIntegers(metrics.registry, 'counter', 'onebox_push_total', 'Push outbox outcomes',
    () => Object.entries(s.push.stats).map(([outcome, n]) => [{ outcome }, n] as const), ['outcome']);
  let cluster: WorkerFigures[] = [];
  const perWorker = (pick: (w: WorkerFigures) => number) => () =>
    cluster.map((w) => [{ worker: String(w.index), pid: String(w.pid) }, pick(w)] as const);
  exposeIntegers(metrics.registry, 'gauge', 'onebox_cluster_ws_connections', 'Open WebSockets per worker (WORKERS>1)', perWorker((w) => w.connections), ['worker', 'pid']);
  exposeIntegers(metrics.registry, 'gauge', 'onebox_cluster_resident_memory_bytes', 'RSS per worker (WORKERS>1)', perWorker((w) => w.rssBytes), ['worker', 'pid']);
  exposeIntegers(metrics.registry, 'gauge', 'onebox_cluster_heap_used_bytes', 'JavaScript heap used per worker (WORKERS>1)', perWorker((w) => w.heapBytes), ['worker', 'pid']);
  exposeIntegers(metrics.registry, 'counter', 'onebox_cluster_worker_restarts_total', 'Restarts per worker slot (WORKERS>1)', perWorker((w) => w.restarts), ['worker', 'pid']);
  exposeIntegers(metrics.registry, 'counter', 'onebox_event_flushes_total', 'Event ingestion transactions', () => s.events.flushes);
  if (limits instanceof SupervisorLimits) {
    exposeIntegers(metrics.registry, 'counter', 'onebox_limits_ipc_timeouts_total', 'Limit requests the supervisor did not answer in time (WORKERS>1)', () => limits.stats.timeouts);
  }
  exposeIntegers(metrics.registry, 'gauge', 'onebox_http_requests_in_flight', 'HTTP requests being served', () => lifecycle.inflight);

  const app = new Hono<AppEnv>();
  app.onError(handleError(log, { userGone: knownUsers }));
  app.notFound(() => jsonError('not_found', 'no such route'));

  app.use(requestId());
  app.use(observe(s));
  app.use(async (c, next) => {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    // Answered before the body was read (401, 413, 415…): the unread bytes would be taken
    // for the next request, so this connection must not be reused.
    if (!c.req.raw.bodyUsed && hasBody(c.req.raw)) c.header('Connection', 'close');
  });
  if (config.corsOrigins.length > 0) app.use(cors({ origin: [...config.corsOrigins], maxAge: 600 }));
  app.use(compress(config.compressMinBytes));
  app.use(
    bodyLimit({
      maxSize: config.bodyLimitBytes,
      onError: () => {
        // The rest of the body is never read: the connection must close after this answer.
        throw new AppError('payload_too_large', `body over ${config.bodyLimitBytes} bytes`, { headers: { Connection: 'close' } });
      },
    }),
  );
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (_c, methods) =>
        jsonError('method_not_allowed', 'method not allowed', undefined, { Allow: methods.join(', ') }),
    }),
  );
  // No id, email or topic holds U+0000, and PostgreSQL refuses it in any text parameter
  // (SQLite just finds nothing): a path that decodes to one names nothing, on either store.
  app.use(async (c, next) => {
    if (c.req.path.includes('\u0000')) throw new AppError('not_found', 'no such route or resource');
    await next();
  });
  // While draining or starting, API requests get 503 so a balancer retries elsewhere;
  // probes and metrics still answer.
  app.use('/v1/*', async (_c, next) => {
    if (!lifecycle.isReady) throw new AppError('not_ready', 'server is not ready', { headers: { 'Retry-After': '1' } });
    await next();
  });

  app.route('/', healthRoutes(s));
  app.route('/', authRoutes(s));
  app.route('/', meRoutes(s));
  app.route('/', notifyRoutes(s));
  app.route('/', dashboardRoutes(s));
  app.route('/', eventRoutes(s));
  app.route('/', deviceRoutes(s));
  app.route('/', statusRoutes(s, { gateway, live: s.live, cluster: () => cluster }));
  if (config.testMode && config.faultBlockRoute) {
    // Fault injection for tests of the watchdog and the block detector.
    app.post('/debug/block', requireAdmin(s), async (c) => {
      const ms = Math.min(60_000, Number((await c.req.json<{ ms?: number }>()).ms) || 0);
      const until = performance.now() + ms;
      while (performance.now() < until) {
        /* hold the loop */
      }
      return c.json({ blockedMs: ms });
    });
  }
  const openapi = JSON.stringify(openApiDocument());
  app.get('/openapi.json', (c) => c.body(openapi, 200, { 'Content-Type': 'application/json' }));

  return {
    fetch: (req, env) => app.fetch(req, env),
    gateway,
    lifecycle,
    metrics,
    db,
    setClusterTable: (t) => {
      cluster = t;
    },
    routes: () => app.routes.map((r) => ({ method: r.method, path: r.path })),
    live: s.live,
    startBackground: () => {
      backplane?.start();
      s.push.start();
      s.live.start();
      s.loopMonitor.start();
    },
    async close() {
      gateway.stop();
      s.live.stop();
      s.loopMonitor.stop();
      await s.push.stop();
      await backplane?.stop();
      await s.events.drain();
      if (limits instanceof SupervisorLimits) limits.close();
      metrics.close();
      await db.destroy();
    },
  };
}
