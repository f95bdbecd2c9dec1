/**
 * Every setting comes from the environment through one schema, is validated once at boot
 * and then frozen. A bad value stops the process before it listens, with a message that
 * names the variable and the form it accepts.
 *
 * The schema is written in the shape the code reads (camelCase, `push.apns.keyFile`); each
 * leaf names its environment variable and its default as it would be written there, so the
 * `Config` type, the docs on its fields (hover one), the variable names and the defaults
 * all come from this one declaration. Rules that span variables run once every variable is
 * valid on its own; `deriveDefaults` then fills what is computed from other settings. This
 * is the only module that reads `process.env`; the supervisor gets its workers' environment
 * from `workerEnvironment` below.
 */
import { z } from 'zod';
import { parseTrustProxy } from './lib/client-address.js';

/** Where a setting comes from: its environment variable and its default as written there. */
interface Variable {
  env: string;
  fallback: string | undefined;
}

const variables = new Map<z.ZodType, Variable>();

/**
 * The setting read from environment variable `env`, parsed by `schema`; unset (or empty) it
 * takes `fallback`, or stays undefined without one.
 */
function setting<T extends z.ZodType<unknown, string>>(env: string, schema: T, fallback: string): z.ZodPrefault<T>;
function setting<T extends z.ZodType<unknown, string>>(env: string, schema: T): z.ZodOptional<T>;
function setting(env: string, schema: z.ZodType<unknown, string>, fallback?: string): z.ZodType {
  const s = fallback === undefined ? schema.optional() : schema.prefault(fallback);
  variables.set(s, { env, fallback });
  return s;
}

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be an integer')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);

const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

const text = z.string().min(1);

const list = z.string().transform((s): readonly string[] => s.split(',').map((p) => p.trim()).filter(Boolean));

const trustProxy = z.string().transform((v, ctx) => {
  const t = parseTrustProxy(v);
  if (typeof t !== 'string') return t;
  ctx.addIssue({ code: 'custom', message: t });
  return z.NEVER;
});

const settings = z.object({
  /** Listen port; 0 takes any free port. @default 8080 */
  port: setting('PORT', int(0, 65535), '8080'),
  /** Listen address. @default 0.0.0.0 */
  host: setting('HOST', text, '0.0.0.0'),
  /** The HTTP/WebSocket server: Bun's built-in one or node:http with `ws`. @default bun */
  engine: setting('ENGINE', z.enum(['bun', 'node']), 'bun'),
  /** Processes sharing the port; more than one needs redisUrl. @default 1 */
  workers: setting('WORKERS', int(1, 256), '1'),
  /**
   * This process's index when it is a supervised worker (the supervisor sets it, see
   * `workerEnvironment`); undefined in a single process or the supervisor itself.
   */
  workerIndex: setting('ONEBOX_WORKER', int(0, 255)),
  /**
   * Each worker's heap bound, MiB: Node's `--max-old-space-size`, Bun's
   * `BUN_JSC_forceRAMSize`; 0 keeps the runtime's own default.
   * @default 75% of the box's memory (cgroup limit, else MemTotal) divided by WORKERS
   */
  workerHeapMb: setting('WORKER_HEAP_MB', int(0, 16_777_216)),
  /**
   * Node's young generation, MiB per semi-space (`--max-semi-space-size`); 0 keeps V8's
   * default (16). 64 cut GC time on write-heavy requests but held 40-80 MB more RSS per
   * worker and doubled the RSS per idle WebSocket (bench/results/memory-sizing). @default 0
   */
  semiSpaceMb: setting('SEMI_SPACE_MB', int(0, 1024), '0'),
  /** Start Bun with `--smol`: the GC runs more often, for less memory. @default false */
  bunSmol: setting('BUN_SMOL', flag, 'false'),
  /** The SQLite file and the development JWT secret live here. @default ./data */
  dataDir: setting('DATA_DIR', text, './data'),
  /** `postgres://…` for PostgreSQL. @default SQLite in dataDir */
  databaseUrl: setting('DATABASE_URL', z.string().regex(/^(postgres|postgresql):\/\//, 'must be a postgres:// URL')),
  /** The backplane for several processes or boxes. @default none (one process, in-memory hub) */
  redisUrl: setting('REDIS_URL', z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')),
  /** HS256 signing key. @default generated once and kept in dataDir (development) */
  jwtSecret: setting('JWT_SECRET', z.string().min(32, 'must be at least 32 characters')),
  /** HS256 key of subscription tokens (`aud: onebox:sub`). @default JWT_SECRET */
  subTokenSecret: setting('SUB_TOKEN_SECRET', z.string().min(32, 'must be at least 32 characters')),
  // Documented on the derived field in deriveDefaults: unset, it follows JWT_TTL_S, then 900 s.
  accessTtlS: setting('ACCESS_TTL_S', int(60, 31_536_000)),
  /** The former name of ACCESS_TTL_S, still read; setting both is a configuration error. */
  jwtTtlS: setting('JWT_TTL_S', int(60, 31_536_000)),
  /** How long a refresh token works after it was issued (each refresh issues a new one). @default 2592000 s (30 days) */
  refreshTtlS: setting('REFRESH_TTL_S', int(60, 31_536_000), '2592000'),
  /**
   * A refresh token presented again within this long of its rotation gets a fresh answer (the
   * first was lost on the way) instead of revoking its session as stolen; 0 disables. @default 30 s
   */
  refreshReuseGraceS: setting('REFRESH_REUSE_GRACE_S', int(0, 3600), '30'),
  /** Bearer token of the admin routes (and of /metrics, /status off loopback). @default none */
  adminToken: setting('ADMIN_TOKEN', z.string().min(16, 'must be at least 16 characters')),
  /**
   * Which X-Forwarded-For entries to believe (lib/client-address.ts): off, a number of
   * trusted proxy hops (`true` = 1), or a list of proxy addresses/CIDRs. @default off
   */
  trustProxy: setting('TRUST_PROXY', trustProxy, 'false'),
  /** Origins allowed by CORS, comma-separated in the environment. @default none (CORS off) */
  corsOrigins: setting('CORS_ORIGINS', list, ''),
  /** Lowest level logged; one line per request at debug. @default info */
  logLevel: setting('LOG_LEVEL', z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']), 'info'),
  /** Time in-flight work gets to finish after SIGTERM. @default 10000 ms */
  shutdownGraceMs: setting('SHUTDOWN_GRACE_MS', int(0, 600_000), '10000'),
  /** Largest request body. @default 1 MiB */
  bodyLimitBytes: setting('BODY_LIMIT_BYTES', int(1024, 64 * 1024 * 1024), '1048576'),
  /** Responses smaller than this go uncompressed. @default 1024 bytes */
  compressMinBytes: setting('COMPRESS_MIN_BYTES', int(0, 1 << 30), '1024'),
  /** Login/signup attempts per client address and per email, per box. @default 20 per minute */
  authRatePerMin: setting('AUTH_RATE_PER_MIN', int(1, 100_000), '20'),
  /**
   * Outgoing mail server: `smtp://[user:password@]host[:port]` (STARTTLS when the server offers
   * it) or `smtps://…` (TLS from the start). Unset: mail is logged instead (development, no
   * JWT_SECRET) or not sent at all (JWT_SECRET set). @default none
   */
  smtpUrl: setting('SMTP_URL', z.string().regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')),
  /** The From of every mail, e.g. `Acme <no-reply@acme.example>`; required with SMTP_URL. @default none */
  mailFrom: setting('MAIL_FROM', text),
  /**
   * Base of the links in mails (`<APP_URL>/verify-email?token=…`, `<APP_URL>/reset-password?token=…`):
   * the app's page or universal link that posts the token back. Unset, mails carry the code alone. @default none
   */
  appUrl: setting('APP_URL', z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''))),
  /** Deadline of each SMTP step (connect, greeting, each command) of one send. @default 10000 ms */
  smtpTimeoutMs: setting('SMTP_TIMEOUT_MS', int(100, 600_000), '10000'),
  /** Mails that forgot-password, resend-verification and change-email may send to one address, per box. @default 5 per hour */
  mailPerAddressPerHour: setting('MAIL_PER_ADDRESS_PER_HOUR', int(1, 10_000), '5'),
  /** Lifetime of an email verification link (signup, resend, change of email). @default 86400 s */
  emailVerifyTtlS: setting('EMAIL_VERIFY_TTL_S', int(60, 31_536_000), '86400'),
  /** Lifetime of a password reset link. @default 1800 s */
  passwordResetTtlS: setting('PASSWORD_RESET_TTL_S', int(60, 86_400), '1800'),
  /** Refuse login (403 `email_not_verified`) until the address is verified; signup then answers 202 without a token. @default false */
  requireEmailVerification: setting('REQUIRE_EMAIL_VERIFICATION', flag, 'false'),
  /**
   * Signup that does not tell a taken email apart (needs REQUIRE_EMAIL_VERIFICATION): always 202,
   * and the owner of a taken address gets a mail saying they already have an account. @default false
   */
  signupEnumerationSafe: setting('SIGNUP_ENUMERATION_SAFE', flag, 'false'),
  /** `DELETE /v1/me` without the password needs an access token issued at most this long ago. 0: always the password. @default 300 s */
  freshLoginS: setting('FRESH_LOGIN_S', int(0, 86_400), '300'),
  /** Upgrade ceiling of this process. @default derived from the open-file limit */
  maxConnections: setting('MAX_CONNECTIONS', int(1, 10_000_000)),
  /**
   * WebSocket handshakes one process works on at once (token being checked, or upgraded and
   * not yet open); beyond it an upgrade is 503 + Retry-After before any work. Bounds how long
   * an admitted handshake waits where the token check waits on a store. Off by default: in
   * the one quiet storm measurement (bench/results/storm-node) a bound of 1024 slowed the
   * recovery on Node. @default unbounded
   */
  maxHandshakes: setting('MAX_HANDSHAKES', int(1, 1_000_000)),
  /** WebSocket connections per client address, per box (all workers). @default unlimited */
  maxConnectionsPerIp: setting('MAX_CONNECTIONS_PER_IP', int(1, 10_000_000)),
  /** Protocol ping period. @default 30000 ms */
  pingIntervalMs: setting('PING_INTERVAL_MS', int(50, 3_600_000), '30000'),
  // Documented on the derived field in deriveDefaults: unset, it follows pingIntervalMs.
  idleTimeoutMs: setting('IDLE_TIMEOUT_MS', int(100, 36_000_000)),
  /** Largest inbound WebSocket message. @default 16 KiB */
  maxMessageBytes: setting('MAX_MESSAGE_BYTES', int(128, 16 * 1024 * 1024), '16384'),
  /** Outbound bytes queued per connection before it is dropped as a slow consumer. @default 512 KiB */
  maxBufferedBytes: setting('MAX_BUFFERED_BYTES', int(1024, 256 * 1024 * 1024), '524288'),
  /** Topics one connection may hold. @default 100 */
  maxSubscriptions: setting('MAX_SUBSCRIPTIONS', int(1, 10_000), '100'),
  /** Deepest nesting of client JSON (HTTP bodies and WebSocket frames). @default 32 levels */
  maxJsonDepth: setting('MAX_JSON_DEPTH', int(2, 1000), '32'),
  /** JSON file of namespace rules (who reads and publishes, history, recovery, presence); replaces the built-in rules as a whole. */
  channelsFile: setting('CHANNELS_FILE', text),
  /** How long a notification to a connected user waits for a receipt before its pushes go out. @default 5000 ms */
  pushFallbackMs: setting('PUSH_FALLBACK_MS', int(0, 86_400_000), '5000'),
  /** Period of the background run that trims topic logs to their namespace's history bounds. @default 1000 ms */
  retentionIntervalMs: setting('RETENTION_INTERVAL_MS', int(100, 86_400_000), '1000'),
  /** How long a user whose last connection left a presence topic stays a member (a reconnect within it is no event). @default 5000 ms */
  presenceGraceMs: setting('PRESENCE_GRACE_MS', int(0, 600_000), '5000'),
  /** Members above which a presence topic sends a count (at most once a second) instead of join/leave events. @default 1000 */
  presenceEventsMax: setting('PRESENCE_EVENTS_MAX', int(0, 10_000_000), '1000'),
  /**
   * With REDIS_URL: how long a process's presence share outlives its last refresh (every third
   * of this); a crashed process's members leave within 4/3 of it plus the grace. @default 15000 ms
   */
  presenceTtlMs: setting('PRESENCE_TTL_MS', int(300, 600_000), '15000'),
  /** Client publishes per second per connection and namespace (burst of twice that), unless the namespace sets `publishPerS`. @default 10 */
  wsPublishPerS: setting('WS_PUBLISH_PER_S', int(1, 1_000_000), '10'),
  /** Deadline of the dashboard's concurrent loads. @default 2000 ms */
  dashboardTimeoutMs: setting('DASHBOARD_TIMEOUT_MS', int(10, 600_000), '2000'),
  /**
   * The one switch for every test-only behaviour: push endpoints on loopback, and the
   * `FAULT_*` settings (which refuse to load without it). Logged as a warning at boot.
   * @default false
   */
  testMode: setting('TEST_MODE', flag, 'false'),
  /**
   * How long this process trusts that a token's user still exists before asking the store
   * again; a user deleted elsewhere keeps a working token here for at most this long.
   * 0 asks on every request. @default 5000 ms
   */
  userCheckTtlMs: setting('USER_CHECK_TTL_MS', int(0, 600_000), '5000'),
  /** `/readyz` answers 503 when a store ping takes longer than this (one ping serves 1 s of probes). @default 1000 ms */
  readyStoreTimeoutMs: setting('READY_STORE_TIMEOUT_MS', int(10, 60_000), '1000'),
  /** Fault injection for tests (needs testMode): an abortable delay before each dashboard load, and a delay before each WebSocket upgrade's token check. @default none */
  faultStoreDelayMs: setting('FAULT_STORE_DELAY_MS', int(0, 600_000)),
  /** Fault injection for tests (needs testMode): `POST /debug/block {ms}` (admin) holds the event loop. @default off */
  faultBlockRoute: setting('FAULT_BLOCK_ROUTE', flag),
  /**
   * Fault injection for tests (needs testMode): `POST /v1/notify` SIGKILLs its own process
   * right after its transaction commits, before the fan-out (the crash window of delivery v2).
   * @default off
   */
  faultCrashAfterCommit: setting('FAULT_CRASH_AFTER_COMMIT', flag),
  /** Event-loop stall that is logged with what was running. @default 200 ms */
  blockWarnMs: setting('BLOCK_WARN_MS', int(1, 600_000), '200'),
  /** Push targets one user may hold; registering one more replaces their least recently registered. @default 20 */
  maxDevicesPerUser: setting('MAX_DEVICES_PER_USER', int(1, 10_000), '20'),
  /**
   * Deadline of one call to a sign-in provider: fetching Apple's or Google's signing keys,
   * Apple's token exchange and revocation. @default 5000 ms
   */
  authProviderTimeoutMs: setting('AUTH_PROVIDER_TIMEOUT_MS', int(100, 60_000), '5000'),
  apple: z.object({
    /**
     * Audiences accepted in Sign in with Apple ID tokens (the app's bundle ids, Services IDs),
     * comma-separated in the environment. @default none (POST /v1/auth/apple answers 404)
     */
    clientIds: setting('APPLE_CLIENT_IDS', list, ''),
    /** The .p8 key of Sign in with Apple, for the client secret of the code exchange and revocation. */
    keyFile: setting('APPLE_KEY_FILE', text),
    keyId: setting('APPLE_KEY_ID', text),
    teamId: setting('APPLE_TEAM_ID', text),
    /** Test only (needs testMode): Apple's JWKS URL. @default https://appleid.apple.com/auth/keys */
    testJwksUrl: setting('TEST_APPLE_JWKS_URL', z.url()),
    /** Test only (needs testMode): Apple's token endpoint. @default https://appleid.apple.com/auth/token */
    testTokenUrl: setting('TEST_APPLE_TOKEN_URL', z.url()),
    /** Test only (needs testMode): Apple's revoke endpoint. @default https://appleid.apple.com/auth/revoke */
    testRevokeUrl: setting('TEST_APPLE_REVOKE_URL', z.url()),
  }),
  google: z.object({
    /**
     * Audiences accepted in Google ID tokens (OAuth client ids), comma-separated in the
     * environment. @default none (POST /v1/auth/google answers 404)
     */
    clientIds: setting('GOOGLE_CLIENT_IDS', list, ''),
    /** Test only (needs testMode): Google's JWKS URL. @default https://www.googleapis.com/oauth2/v3/certs */
    testJwksUrl: setting('TEST_GOOGLE_JWKS_URL', z.url()),
  }),
  push: z.object({
    /** Outbox poll period. @default 1000 ms */
    pollMs: setting('PUSH_POLL_MS', int(10, 3_600_000), '1000'),
    /** How long a claimed outbox row is owned; at least twice sendTimeoutMs. @default 30000 ms */
    leaseMs: setting('PUSH_LEASE_MS', int(100, 3_600_000), '30000'),
    /** Sends of one row before it fails. @default 10 */
    maxAttempts: setting('PUSH_MAX_ATTEMPTS', int(1, 100), '10'),
    /** First retry delay; doubles per attempt, capped at 1 h. @default 1000 ms */
    backoffBaseMs: setting('PUSH_BACKOFF_BASE_MS', int(1, 3_600_000), '1000'),
    /** Deadline of one send to a provider (connect, TLS, request, response); then it is retried. @default 5000 ms */
    sendTimeoutMs: setting('PUSH_SEND_TIMEOUT_MS', int(10, 600_000), '5000'),
    /** Sends in flight at once on this box, split evenly over WORKERS (at least one each). @default 16 */
    concurrency: setting('PUSH_CONCURRENCY', int(1, 1024), '16'),
    apns: z.object({
      /** The .p8 signing key of APNs token auth. */
      keyFile: setting('APNS_KEY_FILE', text),
      keyId: setting('APNS_KEY_ID', text),
      teamId: setting('APNS_TEAM_ID', text),
      /** The app's bundle id. */
      topic: setting('APNS_TOPIC', text),
      /** @default https://api.push.apple.com */
      origin: setting('APNS_ORIGIN', z.url(), 'https://api.push.apple.com'),
    }),
    fcm: z.object({
      /** The service account JSON of FCM HTTP v1. */
      serviceAccountFile: setting('FCM_SERVICE_ACCOUNT_FILE', text),
      /** @default https://fcm.googleapis.com */
      origin: setting('FCM_ORIGIN', z.url(), 'https://fcm.googleapis.com'),
    }),
    webPush: z.object({
      publicKey: setting('VAPID_PUBLIC_KEY', text),
      privateKey: setting('VAPID_PRIVATE_KEY', text),
      /** The contact sent to push services. */
      subject: setting('VAPID_SUBJECT', z.string().regex(/^(mailto:|https:)/, 'must be a mailto: or https: URL')),
    }),
  }),
  /** What systemd hands the service (sd_notify(3)); workers never see it. */
  systemd: z.object({
    /** Where READY/WATCHDOG/STATUS/STOPPING go; unset outside a Type=notify unit. */
    notifySocket: setting('NOTIFY_SOCKET', text),
    /** The watchdog interval. @default none (no watchdog) */
    watchdogUsec: setting('WATCHDOG_USEC', int(0, Number.MAX_SAFE_INTEGER)),
    /** The process the watchdog is meant for. @default any */
    watchdogPid: setting('WATCHDOG_PID', int(0, Number.MAX_SAFE_INTEGER)),
  }),
});

type Settings = z.output<typeof settings>;

const FAULTS = ['faultStoreDelayMs', 'faultBlockRoute', 'faultCrashAfterCommit'] as const;

/** The rules that span variables; each issue's path names the variable at fault. */
function crossFieldRules(c: Settings, ctx: z.RefinementCtx): void {
  if (c.idleTimeoutMs !== undefined && c.idleTimeoutMs <= c.pingIntervalMs) {
    ctx.addIssue({ code: 'custom', path: ['idleTimeoutMs'], message: `must be greater than PING_INTERVAL_MS (${c.pingIntervalMs})` });
  }
  if (c.accessTtlS !== undefined && c.jwtTtlS !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['jwtTtlS'], message: 'the former name of ACCESS_TTL_S: set only one of them' });
  }
  if (c.workers > 1 && !c.redisUrl) {
    ctx.addIssue({ code: 'custom', path: ['workers'], message: 'several workers need REDIS_URL for the backplane' });
  }
  if (!c.testMode) {
    for (const k of FAULTS) {
      if (c[k] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [k], message: 'a fault-injection setting, allowed only with TEST_MODE=true' });
      }
    }
  }
  if (!c.testMode) {
    const overrides = [
      ['apple', 'testJwksUrl'],
      ['apple', 'testTokenUrl'],
      ['apple', 'testRevokeUrl'],
      ['google', 'testJwksUrl'],
    ] as const;
    for (const [group, key] of overrides) {
      if ((c[group] as Record<string, unknown>)[key] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [group, key], message: 'a test-only endpoint override, allowed only with TEST_MODE=true' });
      }
    }
  }
  const appleKey = (['keyFile', 'keyId', 'teamId'] as const).filter((k) => c.apple[k] === undefined);
  if (appleKey.length > 0 && appleKey.length < 3) {
    for (const k of appleKey) ctx.addIssue({ code: 'custom', path: ['apple', k], message: 'set all of APPLE_KEY_FILE, APPLE_KEY_ID, APPLE_TEAM_ID, or none' });
  }
  if (c.smtpUrl && !c.mailFrom) {
    ctx.addIssue({ code: 'custom', path: ['mailFrom'], message: 'required with SMTP_URL (the From of every mail)' });
  }
  if (c.signupEnumerationSafe && !c.requireEmailVerification) {
    ctx.addIssue({ code: 'custom', path: ['signupEnumerationSafe'], message: 'needs REQUIRE_EMAIL_VERIFICATION=true (the account is usable only once its owner answers the mail)' });
  }
  // In production (JWT_SECRET set) without SMTP no mail goes out: nobody could ever verify.
  if (c.requireEmailVerification && c.jwtSecret && !c.smtpUrl) {
    ctx.addIssue({ code: 'custom', path: ['requireEmailVerification'], message: 'needs SMTP_URL when JWT_SECRET is set: without it no verification mail is sent' });
  }
  // A lease that ends while its send may still be running lets another claimer send it too.
  if (c.push.leaseMs < 2 * c.push.sendTimeoutMs) {
    ctx.addIssue({ code: 'custom', path: ['push', 'leaseMs'], message: `must be at least twice PUSH_SEND_TIMEOUT_MS (${c.push.sendTimeoutMs})` });
  }
  allOrNone(ctx, 'apns', c.push.apns);
  allOrNone(ctx, 'webPush', c.push.webPush);
}

type ProviderGroup = 'apns' | 'fcm' | 'webPush';

/** The settings of a push provider group that have no default: its credentials. */
const credentials = (group: ProviderGroup): string[] =>
  Object.entries(settings.shape.push.shape[group].shape)
    .filter(([, field]) => variables.get(field)!.fallback === undefined)
    .map(([key]) => key);

/** Credentials that work only together: when some are set, each missing one is an issue. */
function allOrNone(ctx: z.RefinementCtx, group: ProviderGroup, values: Partial<Record<string, unknown>>): void {
  const keys = credentials(group);
  const missing = keys.filter((k) => values[k] === undefined);
  if (missing.length === 0 || missing.length === keys.length) return;
  const names = keys.map((k) => envName(['push', group, k])).join(', ');
  for (const k of missing) ctx.addIssue({ code: 'custom', path: ['push', group, k], message: `set all of ${names}, or none` });
}

/** A provider's settings when all its credentials are set (the rules above allow all or none). */
function complete<T extends object>(group: ProviderGroup, values: T): { [K in keyof T]-?: Exclude<T[K], undefined> } | undefined {
  const set = credentials(group).every((k) => (values as Record<string, unknown>)[k] !== undefined);
  return set ? (values as { [K in keyof T]-?: Exclude<T[K], undefined> }) : undefined;
}

/** Settings computed from others, and the provider groups, present only when configured. */
function deriveDefaults(c: Settings) {
  return {
    ...c,
    /** Silent connections are terminated after this. @default 2.5 x pingIntervalMs */
    idleTimeoutMs: c.idleTimeoutMs ?? Math.round(c.pingIntervalMs * 2.5),
    apple: {
      ...c.apple,
      /** The Sign in with Apple key (client secrets): all of APPLE_KEY_FILE, _KEY_ID, _TEAM_ID, or unset. */
      key: c.apple.keyFile && c.apple.keyId && c.apple.teamId ? { file: c.apple.keyFile, id: c.apple.keyId, teamId: c.apple.teamId } : undefined,
    },
    /** Access-token lifetime (ACCESS_TTL_S, or its former name JWT_TTL_S). @default 900 s */
    accessTtlS: c.accessTtlS ?? c.jwtTtlS ?? 900,
    /**
     * How mail leaves: over SMTP_URL; without it, logged with its links in development
     * (JWT_SECRET unset) or dropped in production (JWT_SECRET set; one warning at boot).
     */
    mailMode: (c.smtpUrl ? 'smtp' : c.jwtSecret ? 'off' : 'log') as 'smtp' | 'log' | 'off',
    push: {
      ...c.push,
      /** APNs token auth: all of APNS_KEY_FILE, _KEY_ID, _TEAM_ID, _TOPIC, or unset. */
      apns: complete('apns', c.push.apns),
      /** FCM HTTP v1, when FCM_SERVICE_ACCOUNT_FILE is set. */
      fcm: complete('fcm', c.push.fcm),
      /** Web Push: all of VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY, VAPID_SUBJECT, or unset. */
      webPush: complete('webPush', c.push.webPush),
    },
  };
}

// The cross-field rules wait until every variable is valid on its own: zod would otherwise
// run them over the raw strings of the fields in error.
const schema = settings.superRefine(crossFieldRules, { when: (payload) => payload.issues.length === 0 }).transform(deriveDefaults);

/** The validated settings; each component takes the slice it reads (`GatewayOptions`, `PushOptions`, …). */
export type Config = Readonly<z.output<typeof schema>>;

/** Settings whose values are credentials: a configuration error names them, never quotes them. */
const SECRET_VARS = new Set(['JWT_SECRET', 'SUB_TOKEN_SECRET', 'ADMIN_TOKEN', 'DATABASE_URL', 'REDIS_URL', 'VAPID_PRIVATE_KEY', 'SMTP_URL']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The leaves of a schema object, with their paths. */
function* leaves(shape: z.ZodRawShape, path: string[] = []): Generator<[string[], z.ZodType]> {
  for (const [key, field] of Object.entries(shape)) {
    if (field instanceof z.ZodObject) yield* leaves(field.shape, [...path, key]);
    else yield [[...path, key], field as z.ZodType];
  }
}

const byPath = new Map([...leaves(settings.shape)].map(([path, field]) => [path.join('.'), variables.get(field)!]));

/** The environment variable behind a settings path. */
function envName(path: readonly PropertyKey[]): string {
  return byPath.get(path.join('.'))?.env ?? path.join('.');
}

/** Every variable the schema reads, in declaration order, with its default as written in the environment. */
export function environmentVariables(): Array<{ name: string; fallback: string | undefined }> {
  return [...byPath.values()].map((v) => ({ name: v.env, fallback: v.fallback }));
}

/**
 * Variables that were removed, with what replaced them: set, they stop the boot rather than
 * be silently ignored (a deploy that still sets one expects it to work).
 */
const REMOVED: Readonly<Record<string, string>> = {
  WS_PUBLISH_PREFIXES: 'removed: who may publish is the `publish` rule of each namespace in CHANNELS_FILE (README, "Channels")',
};

/** Parse and validate the environment; throws ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const removed = Object.keys(REMOVED)
    .filter((name) => source[name] !== undefined && source[name] !== '')
    .map((name) => `  ${name}: ${REMOVED[name]}`);
  const input = new Map<string, string>();
  const tree: Record<string, unknown> = {};
  for (const [path, field] of leaves(settings.shape)) {
    let node = tree;
    for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    const name = variables.get(field)!.env;
    const value = source[name];
    if (value === undefined || value === '') continue;
    input.set(name, value);
    node[path.at(-1)!] = value;
  }
  const parsed = schema.safeParse(tree);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = envName(i.path);
      const value = input.get(name);
      const fallback = byPath.get(i.path.join('.'))?.fallback;
      const shown =
        value !== undefined ? `=${SECRET_VARS.has(name) ? '[redacted]' : JSON.stringify(value)}`
        : fallback !== undefined ? ` (default ${fallback})`
        : ' (unset)';
      return `  ${name}${shown}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${[...lines, ...removed].join('\n')}`);
  }
  if (removed.length > 0) throw new ConfigError(`invalid configuration:\n${removed.join('\n')}`);
  return deepFreeze(parsed.data);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * The environment of supervised worker `index`: this process's, with the shared port and
 * the worker's index, minus systemd's variables (only the supervisor talks to systemd).
 * Removed variables are set to undefined rather than deleted: the cluster module merges the
 * parent's environment back in, and undefined is what keeps them out.
 */
export function workerEnvironment(
  index: number,
  c: Pick<Config, 'workers'> & { port: number },
  source: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  return {
    ...source,
    ONEBOX_WORKER: String(index),
    PORT: String(c.port),
    WORKERS: String(c.workers),
    NOTIFY_SOCKET: undefined,
    WATCHDOG_USEC: undefined,
    WATCHDOG_PID: undefined,
  };
}
