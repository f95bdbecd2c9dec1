/**
 * Every setting comes from the environment through one schema, is validated once at boot
 * and then frozen. A bad value stops the process before it listens, with a message that
 * names the variable and the form it accepts.
 */
import { z } from 'zod';
import { parseTrustProxy, type TrustProxy } from './lib/client-address.js';

const int = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be an integer`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be between ${min} and ${max}`);

const csv = z
  .string()
  .transform((s) => s.split(',').map((p) => p.trim()).filter(Boolean));

const env = z.object({
  PORT: int('PORT', 0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  ENGINE: z.enum(['bun', 'node']).default('bun'),
  WORKERS: int('WORKERS', 1, 256).default(1),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^(postgres|postgresql):\/\//, 'DATABASE_URL must be a postgres:// URL')
    .optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'REDIS_URL must be a redis:// URL').optional(),
  JWT_SECRET: z.string().min(32, 'JWT_SECRET must be at least 32 characters').optional(),
  JWT_TTL_S: int('JWT_TTL_S', 60, 31_536_000).default(86_400),
  ADMIN_TOKEN: z.string().min(16, 'ADMIN_TOKEN must be at least 16 characters').optional(),
  TRUST_PROXY: z
    .string()
    .default('false')
    .transform((v, ctx) => {
      const t = parseTrustProxy(v);
      if (typeof t !== 'string') return t;
      ctx.addIssue({ code: 'custom', message: `TRUST_PROXY: ${t}` });
      return z.NEVER;
    }),
  CORS_ORIGINS: csv.default([]),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  SHUTDOWN_GRACE_MS: int('SHUTDOWN_GRACE_MS', 0, 600_000).default(10_000),
  BODY_LIMIT_BYTES: int('BODY_LIMIT_BYTES', 1024, 64 * 1024 * 1024).default(1024 * 1024),
  COMPRESS_MIN_BYTES: int('COMPRESS_MIN_BYTES', 0, 1 << 30).default(1024),
  AUTH_RATE_PER_MIN: int('AUTH_RATE_PER_MIN', 1, 100_000).default(20),
  MAX_CONNECTIONS: int('MAX_CONNECTIONS', 1, 10_000_000).optional(),
  MAX_CONNECTIONS_PER_IP: int('MAX_CONNECTIONS_PER_IP', 1, 10_000_000).optional(),
  PING_INTERVAL_MS: int('PING_INTERVAL_MS', 50, 3_600_000).default(30_000),
  IDLE_TIMEOUT_MS: int('IDLE_TIMEOUT_MS', 100, 36_000_000).optional(),
  MAX_MESSAGE_BYTES: int('MAX_MESSAGE_BYTES', 128, 16 * 1024 * 1024).default(16 * 1024),
  MAX_BUFFERED_BYTES: int('MAX_BUFFERED_BYTES', 1024, 256 * 1024 * 1024).default(512 * 1024),
  MAX_SUBSCRIPTIONS: int('MAX_SUBSCRIPTIONS', 1, 10_000).default(100),
  MAX_JSON_DEPTH: int('MAX_JSON_DEPTH', 2, 1000).default(32),
  CHANNELS_FILE: z.string().min(1).optional(),
  PUSH_FALLBACK_MS: int('PUSH_FALLBACK_MS', 0, 86_400_000).default(5000),
  WS_PUBLISH_PREFIXES: csv.default([]),
  WS_PUBLISH_PER_S: int('WS_PUBLISH_PER_S', 1, 1_000_000).default(10),
  DASHBOARD_TIMEOUT_MS: int('DASHBOARD_TIMEOUT_MS', 10, 600_000).default(2000),
  TEST_MODE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  USER_CHECK_TTL_MS: int('USER_CHECK_TTL_MS', 0, 600_000).default(5000),
  READY_STORE_TIMEOUT_MS: int('READY_STORE_TIMEOUT_MS', 10, 60_000).default(1000),
  FAULT_STORE_DELAY_MS: int('FAULT_STORE_DELAY_MS', 0, 600_000).default(0),
  FAULT_BLOCK_ROUTE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  BLOCK_WARN_MS: int('BLOCK_WARN_MS', 1, 600_000).default(200),
  PUSH_POLL_MS: int('PUSH_POLL_MS', 10, 3_600_000).default(1000),
  PUSH_LEASE_MS: int('PUSH_LEASE_MS', 100, 3_600_000).default(30_000),
  PUSH_MAX_ATTEMPTS: int('PUSH_MAX_ATTEMPTS', 1, 100).default(10),
  PUSH_BACKOFF_BASE_MS: int('PUSH_BACKOFF_BASE_MS', 1, 3_600_000).default(1000),
  PUSH_SEND_TIMEOUT_MS: int('PUSH_SEND_TIMEOUT_MS', 10, 600_000).default(5000),
  PUSH_CONCURRENCY: int('PUSH_CONCURRENCY', 1, 1024).default(16),
  MAX_DEVICES_PER_USER: int('MAX_DEVICES_PER_USER', 1, 10_000).default(20),
  APNS_KEY_FILE: z.string().min(1).optional(),
  APNS_KEY_ID: z.string().min(1).optional(),
  APNS_TEAM_ID: z.string().min(1).optional(),
  APNS_TOPIC: z.string().min(1).optional(),
  APNS_ORIGIN: z.url().default('https://api.push.apple.com'),
  FCM_SERVICE_ACCOUNT_FILE: z.string().min(1).optional(),
  FCM_ORIGIN: z.url().default('https://fcm.googleapis.com'),
  VAPID_PUBLIC_KEY: z.string().min(1).optional(),
  VAPID_PRIVATE_KEY: z.string().min(1).optional(),
  VAPID_SUBJECT: z.string().regex(/^(mailto:|https:)/, 'VAPID_SUBJECT must be a mailto: or https: URL').optional(),
});

export type Config = Readonly<{
  port: number;
  host: string;
  engine: 'bun' | 'node';
  workers: number;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  jwtSecret: string | undefined;
  /** Token lifetime. @default 86400 s */
  jwtTtlS: number;
  adminToken: string | undefined;
  /**
   * Which X-Forwarded-For entries to believe (lib/client-address.ts): off, a number of
   * trusted proxy hops (`true` = 1), or a list of proxy addresses/CIDRs. @default off
   */
  trustProxy: TrustProxy;
  corsOrigins: readonly string[];
  logLevel: string;
  /** Time in-flight work gets to finish after SIGTERM. @default 10000 ms */
  shutdownGraceMs: number;
  /** Largest request body. @default 1 MiB */
  bodyLimitBytes: number;
  /** Responses smaller than this go uncompressed. @default 1024 bytes */
  compressMinBytes: number;
  /** Login/signup attempts per client address and per email, per box. @default 20 per minute */
  authRatePerMin: number;
  /** Upgrade ceiling of this process; derived from the open-file limit when unset. */
  maxConnections: number | undefined;
  /** WebSocket connections per client address, per box (all workers). @default unlimited */
  maxConnectionsPerIp: number | undefined;
  /** @default 30000 ms */
  pingIntervalMs: number;
  /** @default 2.5 x pingIntervalMs */
  idleTimeoutMs: number;
  /** Largest inbound WebSocket message. @default 16 KiB */
  maxMessageBytes: number;
  /** Outbound bytes queued per connection before it is dropped as a slow consumer. @default 512 KiB */
  maxBufferedBytes: number;
  /** Topics one connection may hold. @default 100 */
  maxSubscriptions: number;
  /** Deepest nesting of client JSON (HTTP bodies and WebSocket frames). @default 32 levels */
  maxJsonDepth: number;
  /** JSON file of namespace rules (history, recovery); built-in defaults when unset. */
  channelsFile: string | undefined;
  /**
   * How long a notification to a connected user waits for a receipt before its pushes go out.
   * @default 5000 ms
   */
  pushFallbackMs: number;
  /** Topic prefixes clients may publish to. @default none */
  wsPublishPrefixes: readonly string[];
  /** Client publishes per second per connection (burst of twice that). @default 10 */
  wsPublishPerS: number;
  /** Deadline of the dashboard's concurrent loads. @default 2000 ms */
  dashboardTimeoutMs: number;
  /**
   * The one switch for every test-only behaviour: push endpoints on loopback, and the
   * `FAULT_*` settings (which refuse to load without it). Logged as a warning at boot.
   * @default false
   */
  testMode: boolean;
  /**
   * How long this process trusts that a token's user still exists before asking the store
   * again; a user deleted elsewhere keeps a working token here for at most this long.
   * 0 asks on every request. @default 5000 ms
   */
  userCheckTtlMs: number;
  /** `/readyz` answers 503 when a store ping takes longer than this (one ping serves 1 s of probes). @default 1000 ms */
  readyStoreTimeoutMs: number;
  /** Fault injection for tests (needs testMode): an abortable delay before each dashboard load. @default 0 */
  faultStoreDelayMs: number;
  /** Fault injection for tests (needs testMode): `POST /debug/block {ms}` (admin) holds the event loop. @default false */
  faultBlockRoute: boolean;
  /** Push targets one user may hold; registering one more replaces their least recently registered. @default 20 */
  maxDevicesPerUser: number;
  /** Event-loop stall that is logged with what was running. @default 200 ms */
  blockWarnMs: number;
  push: {
    /** @default 1000 ms */
    pollMs: number;
    /** How long a claimed outbox row is owned; at least twice sendTimeoutMs. @default 30000 ms */
    leaseMs: number;
    /** @default 10 */
    maxAttempts: number;
    /** @default 1000 ms */
    backoffBaseMs: number;
    /** Deadline of one send to a provider (connect, TLS, request, response); then it is retried. @default 5000 ms */
    sendTimeoutMs: number;
    /** Sends in flight at once on this box, split evenly over WORKERS (at least one each). @default 16 */
    concurrency: number;
    apns: { keyFile: string; keyId: string; teamId: string; topic: string; origin: string } | undefined;
    fcm: { serviceAccountFile: string; origin: string } | undefined;
    webPush: { publicKey: string; privateKey: string; subject: string } | undefined;
  };
}>;

/** Settings whose values are credentials: a configuration error names them, never quotes them. */
const SECRET_VARS = new Set(['JWT_SECRET', 'ADMIN_TOKEN', 'DATABASE_URL', 'REDIS_URL', 'VAPID_PRIVATE_KEY']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parse and validate the environment; throws ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.keys(env.shape);
  const raw: Record<string, string> = {};
  for (const key of known) {
    const value = source[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = env.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? '');
      const shown = SECRET_VARS.has(name) ? '[redacted]' : JSON.stringify(raw[name] ?? '');
      return `  ${name}=${shown}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const idle = e.IDLE_TIMEOUT_MS ?? Math.round(e.PING_INTERVAL_MS * 2.5);
  if (idle <= e.PING_INTERVAL_MS) {
    throw new ConfigError(
      `invalid configuration:\n  IDLE_TIMEOUT_MS=${idle}: must be greater than PING_INTERVAL_MS (${e.PING_INTERVAL_MS})`,
    );
  }
  if (e.WORKERS > 1 && !e.REDIS_URL) {
    throw new ConfigError(
      `invalid configuration:\n  WORKERS=${e.WORKERS}: several workers need REDIS_URL for the backplane`,
    );
  }
  if (!e.TEST_MODE) {
    const faults = ['FAULT_STORE_DELAY_MS', 'FAULT_BLOCK_ROUTE'].filter((k) => raw[k] !== undefined);
    if (faults.length > 0) {
      throw new ConfigError(
        `invalid configuration:\n${faults.map((k) => `  ${k}=${JSON.stringify(raw[k])}: a fault-injection setting, allowed only with TEST_MODE=true`).join('\n')}`,
      );
    }
  }
  if (e.PUSH_LEASE_MS < 2 * e.PUSH_SEND_TIMEOUT_MS) {
    // A lease that ends while its send may still be running lets another claimer send it too.
    throw new ConfigError(
      `invalid configuration:\n  PUSH_LEASE_MS=${e.PUSH_LEASE_MS}: must be at least twice PUSH_SEND_TIMEOUT_MS (${e.PUSH_SEND_TIMEOUT_MS})`,
    );
  }
  const apnsSet = [e.APNS_KEY_FILE, e.APNS_KEY_ID, e.APNS_TEAM_ID, e.APNS_TOPIC].filter(Boolean).length;
  if (apnsSet !== 0 && apnsSet !== 4) {
    throw new ConfigError('invalid configuration:\n  APNS_*: set all of APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC, or none');
  }
  const vapidSet = [e.VAPID_PUBLIC_KEY, e.VAPID_PRIVATE_KEY, e.VAPID_SUBJECT].filter(Boolean).length;
  if (vapidSet !== 0 && vapidSet !== 3) {
    throw new ConfigError('invalid configuration:\n  VAPID_*: set all of VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY, VAPID_SUBJECT, or none');
  }
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    engine: e.ENGINE,
    workers: e.WORKERS,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    jwtSecret: e.JWT_SECRET,
    jwtTtlS: e.JWT_TTL_S,
    adminToken: e.ADMIN_TOKEN,
    trustProxy: e.TRUST_PROXY,
    corsOrigins: Object.freeze(e.CORS_ORIGINS),
    logLevel: e.LOG_LEVEL,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    compressMinBytes: e.COMPRESS_MIN_BYTES,
    authRatePerMin: e.AUTH_RATE_PER_MIN,
    maxConnections: e.MAX_CONNECTIONS,
    maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP,
    pingIntervalMs: e.PING_INTERVAL_MS,
    idleTimeoutMs: idle,
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    maxBufferedBytes: e.MAX_BUFFERED_BYTES,
    maxSubscriptions: e.MAX_SUBSCRIPTIONS,
    maxJsonDepth: e.MAX_JSON_DEPTH,
    channelsFile: e.CHANNELS_FILE,
    pushFallbackMs: e.PUSH_FALLBACK_MS,
    wsPublishPrefixes: Object.freeze(e.WS_PUBLISH_PREFIXES),
    wsPublishPerS: e.WS_PUBLISH_PER_S,
    dashboardTimeoutMs: e.DASHBOARD_TIMEOUT_MS,
    testMode: e.TEST_MODE,
    userCheckTtlMs: e.USER_CHECK_TTL_MS,
    readyStoreTimeoutMs: e.READY_STORE_TIMEOUT_MS,
    faultStoreDelayMs: e.FAULT_STORE_DELAY_MS,
    faultBlockRoute: e.FAULT_BLOCK_ROUTE,
    blockWarnMs: e.BLOCK_WARN_MS,
    maxDevicesPerUser: e.MAX_DEVICES_PER_USER,
    push: Object.freeze({
      pollMs: e.PUSH_POLL_MS,
      leaseMs: e.PUSH_LEASE_MS,
      maxAttempts: e.PUSH_MAX_ATTEMPTS,
      backoffBaseMs: e.PUSH_BACKOFF_BASE_MS,
      sendTimeoutMs: e.PUSH_SEND_TIMEOUT_MS,
      concurrency: e.PUSH_CONCURRENCY,
      apns: apnsSet
        ? { keyFile: e.APNS_KEY_FILE!, keyId: e.APNS_KEY_ID!, teamId: e.APNS_TEAM_ID!, topic: e.APNS_TOPIC!, origin: e.APNS_ORIGIN }
        : undefined,
      fcm: e.FCM_SERVICE_ACCOUNT_FILE ? { serviceAccountFile: e.FCM_SERVICE_ACCOUNT_FILE, origin: e.FCM_ORIGIN } : undefined,
      webPush: vapidSet ? { publicKey: e.VAPID_PUBLIC_KEY!, privateKey: e.VAPID_PRIVATE_KEY!, subject: e.VAPID_SUBJECT! } : undefined,
    }),
  });
}
