/**
 * The composition root: from one Config, build the store, the token service, the gateway
 * and its hub (the Redis backplane when REDIS_URL is set), the push worker and the HTTP
 * app, and wire each part's listeners through constructors. Nothing here listens: main.ts
 * hands `fetch` and `gateway` to the engine.
 */
import { CLOSE } from './errors.js';
import { createHttpApp } from './app/create-app.js';
import type { Bindings, Services } from './app/context.js';
import { KnownUsers } from './app/auth/known-users.js';
import { RevocationState, Revocations } from './app/auth/revocations.js';
import { Sessions } from './app/auth/sessions.js';
import { resolveJwtSecret } from './app/auth/secret.js';
import { SubTokenService, TokenService, tokenAuthenticator, upgradeAuthenticator } from './app/auth/tokens.js';
import { AppleClient } from './app/auth/apple.js';
import { IdTokenVerifier } from './app/auth/id-tokens.js';
import { SocialSignIn } from './app/auth/social.js';
import { StoreProbe } from './app/store-probe.js';
import type { Config } from './config.js';
import type { Limits } from './lib/limits.js';
import { LocalLimits } from './lib/local-limits.js';
import { SupervisorLimits } from './lib/supervisor-limits.js';
import { sleep } from './lib/scope.js';
import { LiveStats } from './observability/live-stats.js';
import type { Logger } from './observability/logger.js';
import { LoopMonitor } from './observability/loop-monitor.js';
import { createMetrics, registerFigures, type Metrics } from './observability/metrics.js';
import { Lifecycle } from './process/lifecycle.js';
import type { WorkerFigures } from './process/supervisor.js';
import { createPushWorker } from './push/index.js';
import type { RedisHub } from './realtime/backplane/redis-hub.js';
import type { RedisPresence } from './realtime/backplane/presence-redis.js';
import { Channels } from './realtime/channels.js';
import { Gateway } from './realtime/gateway.js';
import { ReceiptBatcher } from './realtime/receipts.js';
import { StoreHistory } from './realtime/store-history.js';
import { ReceiptStore } from './store/receipts.js';
import { openDb, type Db } from './store/db.js';
import { DeviceStore } from './store/devices.js';
import { EventWriter } from './store/events.js';
import { IdentityStore } from './store/identities.js';
import { MemberStore } from './store/members.js';
import { migrateToLatest } from './store/migrations.js';
import { OutboxStore } from './store/outbox.js';
import { UserStore } from './store/users.js';
import { SessionStore } from './store/sessions.js';
import { AccountStore } from './store/accounts.js';
import { OneTimeTokenStore } from './store/one-time-tokens.js';
import { AccountMail } from './app/auth/account-mail.js';
import { AccountDeletion, type DeletionHook } from './app/auth/account-deletion.js';
import { createMailer, Outgoing } from './mail/index.js';

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

/** TEST_MODE with FAULT_STORE_DELAY_MS: each upgrade's token check waits that long first (handshakes in flight, for tests). */
function faultDelayed<A extends unknown[], R>(config: Config, f: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  const ms = config.testMode ? config.faultStoreDelayMs : undefined;
  return ms ? async (...a) => (await sleep(ms), f(...a)) : f;
}

/**
 * Build everything without listening.
 * @param limits the box's limit tables: the supervisor's (SupervisorLimits) in a WORKERS>1
 *   worker. @default in-process counters
 */
export async function buildServer(config: Config, log: Logger, limits: Limits = new LocalLimits()): Promise<OneboxServer> {
  if (config.testMode) {
    log.warn(
      {
        testMode: true,
        faultStoreDelayMs: config.faultStoreDelayMs,
        faultBlockRoute: config.faultBlockRoute,
        faultCrashAfterCommit: config.faultCrashAfterCommit,
      },
      'TEST_MODE=true: test-only behaviour is on (push endpoints on loopback, FAULT_* fault injection, TEST_* sign-in provider endpoints); never run production like this',
    );
  }
  const db = await openDb(config);
  await migrateToLatest(db);
  const metrics = createMetrics();
  const lifecycle = new Lifecycle();
  const users = new UserStore(db);
  const knownUsers = new KnownUsers((id) => users.exists(id), config.userCheckTtlMs);
  const jwtSecret = resolveJwtSecret(config.jwtSecret, config.dataDir, log);
  // A revoked session's entry outlives its last access token, with a minute for clock skew.
  const retainMs = config.accessTtlS * 1000 + 60_000;
  const revokedState = new RevocationState(retainMs);
  const tokens = new TokenService(jwtSecret, config.accessTtlS, (id) => knownUsers.check(id), (t) => revokedState.refuses(t));
  const subTokens = new SubTokenService(config.subTokenSecret ?? jwtSecret);
  const members = new MemberStore(db);
  const loopMonitor = new LoopMonitor(log, config.blockWarnMs);
  const channels = Channels.load(config.channelsFile);
  const history = new StoreHistory(db, channels, (err) => log.error({ err }, 'log retention failed'), config.retentionIntervalMs);
  const receiptStore = new ReceiptStore(db);
  const receipts = new ReceiptBatcher((batch) => receiptStore.record(batch), (err) => log.error({ err }, 'writing receipts failed'));
  const Backplane = config.redisUrl ? (await import('./realtime/backplane/redis-hub.js')).RedisHub : null;
  const PresenceBackplane = config.redisUrl ? (await import('./realtime/backplane/presence-redis.js')).RedisPresence : null;
  const gateway = new Gateway(config, {
    authenticate: faultDelayed(config, upgradeAuthenticator(tokens)),
    authenticateToken: tokenAuthenticator(tokens),
    limits,
    log,
    onActivity: (label) => loopMonitor.enter(label),
    createHub: Backplane ? (local, registry) => new Backplane(config.redisUrl!, local, registry, log) : undefined,
    channels,
    members: (topic, userId) => members.isMember(topic, userId),
    verifySubToken: (token, userId, topic) => subTokens.check(token, userId, topic),
    history: { log: history, receipts },
    presence: {
      graceMs: config.presenceGraceMs,
      eventsMax: config.presenceEventsMax,
      createSync: PresenceBackplane ? (p) => new PresenceBackplane(config.redisUrl!, p, config.presenceTtlMs, log) : undefined,
    },
  });
  const backplane: RedisHub | null = Backplane && gateway.hub instanceof Backplane ? gateway.hub : null;
  const sessionStore = new SessionStore(db);
  const Broadcast = config.redisUrl ? (await import('./realtime/backplane/broadcast-redis.js')).RedisBroadcast : null;
  const revocations = new Revocations({
    store: sessionStore,
    state: revokedState,
    closeSockets: (userId, which) => gateway.closeUserConnections(userId, CLOSE.revoked, 'session_revoked', which),
    bus: Broadcast ? new Broadcast(config.redisUrl!, 'ob:revoke', log) : undefined,
    log,
    retainMs,
  });
  await revocations.load();
  const sessions = new Sessions(sessionStore, users, tokens, revocations, knownUsers, {
    refreshTtlS: config.refreshTtlS,
    reuseGraceS: config.refreshReuseGraceS,
  });
  const presenceSync = gateway.presence.sync as RedisPresence | null;
  const oneTimeTokens = new OneTimeTokenStore(db);
  const accounts = new AccountStore(db, oneTimeTokens);
  const mailer = createMailer(config, log);
  const outgoing = new Outgoing(mailer, log);
  // Work to do before or after an account is deleted (account-deletion.ts): add a hook here.
  const deletionHooks: DeletionHook[] = [];
  const devices = new DeviceStore(db);
  const outbox = new OutboxStore(db);
  const timeoutMs = config.authProviderTimeoutMs;
  const social = new SocialSignIn({
    verifiers: {
      apple: config.apple.clientIds.length > 0 ? new IdTokenVerifier('apple', { clientIds: config.apple.clientIds, timeoutMs, jwksUrl: config.apple.testJwksUrl }) : undefined,
      google: config.google.clientIds.length > 0 ? new IdTokenVerifier('google', { clientIds: config.google.clientIds, timeoutMs, jwksUrl: config.google.testJwksUrl }) : undefined,
    },
    apple: config.apple.key && new AppleClient({ key: config.apple.key, timeoutMs, tokenUrl: config.apple.testTokenUrl, revokeUrl: config.apple.testRevokeUrl }),
    identities: new IdentityStore(db),
    log,
    requireVerifiedEmail: config.requireEmailVerification,
  });
  // Apple requires the app to revoke its Sign in with Apple tokens when the account is
  // deleted; done while the identities still exist. A failed revocation is logged and does
  // not stop the deletion.
  deletionHooks.push({ name: 'apple-tokens', before: async (userId) => void (await social.revokeAppleTokens(userId)) });
  const s: Services = {
    config,
    log,
    db,
    users,
    tokens,
    sessions,
    subTokens,
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
    channels,
    members,
    history,
    receipts: receiptStore,
    social,
    accounts,
    accountMail: new AccountMail(users, oneTimeTokens, outgoing, config),
    accountDeletion: new AccountDeletion(accounts, knownUsers, (id) => sessions.revokeAll(id), log, deletionHooks),
  };
  let cluster: WorkerFigures[] = [];
  registerFigures(metrics, {
    ws: gateway.stats,
    wsCeiling: gateway.ceiling,
    backplane,
    push: s.push.stats,
    dashboardAborts: s.dashboardAborts,
    loopStalls: () => loopMonitor.stalls,
    eventFlushes: () => s.events.flushes,
    httpInFlight: () => lifecycle.inflight,
    limitsIpcTimeouts: limits instanceof SupervisorLimits ? () => limits.stats.timeouts : null,
    revocations: { held: () => revokedState.size, polls: () => revocations.polls },
    cluster: () => cluster,
  });
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
      presenceSync?.start();
      revocations.start();
      history.start();
      s.push.start();
      s.live.start();
      s.loopMonitor.start();
    },
    async close() {
      gateway.stop();
      s.live.stop();
      s.loopMonitor.stop();
      await receipts.flush();
      await history.stop();
      await s.push.stop();
      await backplane?.stop();
      await presenceSync?.stop();
      await revocations.stop();
      await outgoing.drain();
      mailer.close();
      await s.events.drain();
      if (limits instanceof SupervisorLimits) limits.close();
      metrics.close();
      await db.destroy();
    },
  };
}
