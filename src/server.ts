/**
 * The composition root: from one Config, build the store, the token service, the gateway
 * and its hub (the Redis backplane when REDIS_URL is set), the push worker and the HTTP
 * app, and wire each part's listeners through constructors. Nothing here listens: main.ts
 * hands `fetch` and `gateway` to the engine.
 */
import { createHttpApp } from './app/create-app.js';
import type { Bindings, Services } from './app/context.js';
import { KnownUsers } from './app/auth/known-users.js';
import { resolveJwtSecret } from './app/auth/secret.js';
import { TokenService, upgradeAuthenticator } from './app/auth/tokens.js';
import { StoreProbe } from './app/store-probe.js';
import type { Config } from './config.js';
import type { Limits } from './lib/limits.js';
import { LocalLimits } from './lib/local-limits.js';
import { SupervisorLimits } from './lib/supervisor-limits.js';
import { LiveStats } from './observability/live-stats.js';
import type { Logger } from './observability/logger.js';
import { LoopMonitor } from './observability/loop-monitor.js';
import { createMetrics, exposeIntegers, type Metrics } from './observability/metrics.js';
import { Lifecycle } from './process/lifecycle.js';
import type { WorkerFigures } from './process/supervisor.js';
import { createPushWorker } from './push/index.js';
import type { RedisHub } from './realtime/backplane/redis-hub.js';
import { Gateway } from './realtime/gateway.js';
import { openDb, type Db } from './store/db.js';
import { DeviceStore } from './store/devices.js';
import { EventWriter } from './store/events.js';
import { migrateToLatest } from './store/migrations.js';
import { OutboxStore } from './store/outbox.js';
import { UserStore } from './store/users.js';

export interface OneboxServer {
  fetch(req: Request, env: Bindings): Response | Promise<Response>;
  gateway: Gateway;
  lifecycle: Lifecycle;
  metrics: Metrics;
  db: Db;
  /** The supervisor's table of every worker (WORKERS>1). */
  setClusterTable(t: WorkerFigures[]): void;
  live: LiveStats;
  /** Start the push outbox worker, the backplane and the monitors (main.ts does, once listening). */
  startBackground(): void;
  /** Release timers and the database. */
  close(): Promise<void>;
}

/**
 * Build everything without listening.
 * @param limits the box's limit tables: the supervisor's (SupervisorLimits) in a WORKERS>1
 *   worker. @default in-process counters
 */
export async function buildServer(config: Config, log: Logger, limits: Limits = new LocalLimits()): Promise<OneboxServer> {
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
  const loopMonitor = new LoopMonitor(log, config.blockWarnMs);
  const Backplane = config.redisUrl ? (await import('./realtime/backplane/redis-hub.js')).RedisHub : null;
  const gateway = new Gateway(config, {
    authenticate: upgradeAuthenticator(tokens),
    limits,
    log,
    onActivity: (label) => loopMonitor.enter(label),
    createHub: Backplane ? (local, registry) => new Backplane(config.redisUrl!, local, registry, log) : undefined,
  });
  const backplane: RedisHub | null = Backplane && gateway.hub instanceof Backplane ? gateway.hub : null;
  backplane?.exposeMetrics(metrics.registry);
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
    loopMonitor,
  };
  let cluster: WorkerFigures[] = [];
  exposeFigures(s, gateway, () => cluster);
  const app = createHttpApp(s, gateway, () => cluster);

  return {
    fetch: (req, env) => app.fetch(req, env),
    gateway,
    lifecycle,
    metrics,
    db,
    setClusterTable: (t) => {
      cluster = t;
    },
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

/** Register the figures the services keep as plain integers (read at scrape time). */
function exposeFigures(s: Services, gateway: Gateway, cluster: () => WorkerFigures[]): void {
  const { registry } = s.metrics;
  gateway.exposeMetrics(registry);
  exposeIntegers(registry, 'counter', 'onebox_event_loop_stalls_total', `Event-loop stalls over BLOCK_WARN_MS`, () => s.loopMonitor.stalls);
  exposeIntegers(registry, 'counter', 'onebox_dashboard_loads_aborted_total', 'Dashboard loads that observed an abort',
    () => Object.entries(s.dashboardAborts).map(([load, n]) => [{ load }, n] as const), ['load']);
  exposeIntegers(registry, 'counter', 'onebox_push_total', 'Push outbox outcomes',
    () => Object.entries(s.push.stats).map(([outcome, n]) => [{ outcome }, n] as const), ['outcome']);
  const perWorker = (pick: (w: WorkerFigures) => number) => () =>
    cluster().map((w) => [{ worker: String(w.index), pid: String(w.pid) }, pick(w)] as const);
  exposeIntegers(registry, 'gauge', 'onebox_cluster_ws_connections', 'Open WebSockets per worker (WORKERS>1)', perWorker((w) => w.connections), ['worker', 'pid']);
  exposeIntegers(registry, 'gauge', 'onebox_cluster_resident_memory_bytes', 'RSS per worker (WORKERS>1)', perWorker((w) => w.rssBytes), ['worker', 'pid']);
  exposeIntegers(registry, 'gauge', 'onebox_cluster_heap_used_bytes', 'JavaScript heap used per worker (WORKERS>1)', perWorker((w) => w.heapBytes), ['worker', 'pid']);
  exposeIntegers(registry, 'counter', 'onebox_cluster_worker_restarts_total', 'Restarts per worker slot (WORKERS>1)', perWorker((w) => w.restarts), ['worker', 'pid']);
  exposeIntegers(registry, 'counter', 'onebox_event_flushes_total', 'Event ingestion transactions', () => s.events.flushes);
  const { limits } = s;
  if (limits instanceof SupervisorLimits) {
    exposeIntegers(registry, 'counter', 'onebox_limits_ipc_timeouts_total', 'Limit requests the supervisor did not answer in time (WORKERS>1)', () => limits.stats.timeouts);
  }
  exposeIntegers(registry, 'gauge', 'onebox_http_requests_in_flight', 'HTTP requests being served', () => s.lifecycle.inflight);
}
