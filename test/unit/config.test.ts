import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, environmentVariables, loadConfig, workerEnvironment } from '../../src/config.js';

test('defaults are the ones README.md documents', () => {
  const c = loadConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.engine, 'bun');
  assert.equal(c.workers, 1);
  assert.equal(c.pingIntervalMs, 30_000);
  assert.equal(c.idleTimeoutMs, 75_000);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.push) && Object.isFrozen(c.corsOrigins) && Object.isFrozen(c.trustProxy));
});

test('idle timeout derives from the ping interval unless set', () => {
  assert.equal(loadConfig({ PING_INTERVAL_MS: '1000' }).idleTimeoutMs, 2500);
  assert.equal(loadConfig({ PING_INTERVAL_MS: '1000', IDLE_TIMEOUT_MS: '5000' }).idleTimeoutMs, 5000);
});

test('access-token lifetime: ACCESS_TTL_S, else its former name JWT_TTL_S, else 900 s; both set is a configuration error naming JWT_TTL_S', () => {
  assert.equal(loadConfig({}).accessTtlS, 900);
  assert.equal(loadConfig({ ACCESS_TTL_S: '600' }).accessTtlS, 600);
  assert.equal(loadConfig({ JWT_TTL_S: '3600' }).accessTtlS, 3600);
  assert.throws(
    () => loadConfig({ ACCESS_TTL_S: '600', JWT_TTL_S: '3600' }),
    (e: unknown) => e instanceof ConfigError && /JWT_TTL_S="3600": .*ACCESS_TTL_S/.test(e.message),
  );
  const c = loadConfig({});
  assert.deepEqual([c.refreshTtlS, c.refreshReuseGraceS], [2_592_000, 30]);
  assert.equal(loadConfig({ REFRESH_REUSE_GRACE_S: '0' }).refreshReuseGraceS, 0);
});

test('bad values name the variable', () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ ENGINE: 'deno' }, /ENGINE/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ PING_INTERVAL_MS: '1000', IDLE_TIMEOUT_MS: '500' }, /IDLE_TIMEOUT_MS/],
    [{ WORKERS: '2' }, /REDIS_URL/],
  ];
  for (const [env, re] of cases) {
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(env));
  }
});

test('lists are split on commas', () => {
  assert.deepEqual(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins, [
    'https://a.example',
    'https://b.example',
  ]);
});

test('TRUST_PROXY accepts false, true (one hop), a hop count or proxy addresses, and names itself otherwise', () => {
  assert.equal(loadConfig({}).trustProxy.kind, 'off');
  assert.deepEqual(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, { kind: 'hops', hops: 1 });
  assert.deepEqual(loadConfig({ TRUST_PROXY: '2' }).trustProxy, { kind: 'hops', hops: 2 });
  assert.equal(loadConfig({ TRUST_PROXY: '127.0.0.1,10.0.0.0/8' }).trustProxy.kind, 'proxies');
  for (const bad of ['yes', '10.0.0.0/40', '99']) {
    assert.throws(() => loadConfig({ TRUST_PROXY: bad }), (e: unknown) => e instanceof ConfigError && /TRUST_PROXY/.test(e.message), bad);
  }
});

test('push hardening defaults: send deadline, concurrency, device cap, test mode off', () => {
  const c = loadConfig({});
  assert.equal(c.push.sendTimeoutMs, 5000);
  assert.equal(c.push.concurrency, 16);
  assert.equal(c.maxDevicesPerUser, 20);
  assert.equal(c.testMode, false);
});

test('FAULT_* settings need TEST_MODE=true; the error names the variable', () => {
  for (const env of [
    { FAULT_STORE_DELAY_MS: '100' },
    { FAULT_BLOCK_ROUTE: 'true' },
    { FAULT_BLOCK_ROUTE: 'true', TEST_MODE: 'false' },
    { FAULT_CRASH_AFTER_COMMIT: 'true' },
  ]) {
    const name = Object.keys(env)[0]!;
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.message.includes(name), JSON.stringify(env));
  }
  const c = loadConfig({ TEST_MODE: 'true', FAULT_STORE_DELAY_MS: '100', FAULT_BLOCK_ROUTE: 'true', FAULT_CRASH_AFTER_COMMIT: 'true' });
  assert.deepEqual([c.testMode, c.faultStoreDelayMs, c.faultBlockRoute, c.faultCrashAfterCommit], [true, 100, true, true]);
  assert.throws(() => loadConfig({ TEST_MODE: 'yes' }), (e: unknown) => e instanceof ConfigError && /TEST_MODE/.test(e.message));
});

test('the push lease must outlast twice the send deadline', () => {
  assert.throws(
    () => loadConfig({ PUSH_SEND_TIMEOUT_MS: '20000' }),
    (e: unknown) => e instanceof ConfigError && /PUSH_LEASE_MS/.test(e.message),
  );
  assert.equal(loadConfig({ PUSH_SEND_TIMEOUT_MS: '500', PUSH_LEASE_MS: '1000' }).push.leaseMs, 1000);
  for (const env of [{ PUSH_CONCURRENCY: '0' }, { MAX_DEVICES_PER_USER: '0' }, { PUSH_SEND_TIMEOUT_MS: 'soon' }]) {
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.message.includes(Object.keys(env)[0]!));
  }
});

/** The message of the ConfigError that loading `env` throws. */
function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  assert.fail(`${JSON.stringify(env)} loaded`);
}

test('every bad variable is named in one error, not only the first', () => {
  const message = configError({ PORT: 'x', ENGINE: 'deno', PUSH_CONCURRENCY: '0', APNS_ORIGIN: 'not a url' });
  for (const name of ['PORT', 'ENGINE', 'PUSH_CONCURRENCY', 'APNS_ORIGIN']) assert.match(message, new RegExp(`^  ${name}\\b`, 'm'), name);
});

test('APNS_* and VAPID_* are all or none; the error names each missing variable', () => {
  const apns = configError({ APNS_KEY_FILE: '/k.p8', APNS_KEY_ID: 'K' });
  for (const name of ['APNS_TEAM_ID', 'APNS_TOPIC']) assert.match(apns, new RegExp(`^  ${name}\\b`, 'm'), name);
  assert.doesNotMatch(apns, /^ {2}APNS_KEY_FILE\b/m);
  assert.match(configError({ VAPID_PUBLIC_KEY: 'pub' }), /^ {2}VAPID_PRIVATE_KEY\b/m);
  const full = loadConfig({ APNS_KEY_FILE: '/k.p8', APNS_KEY_ID: 'K', APNS_TEAM_ID: 'T', APNS_TOPIC: 'app' });
  assert.deepEqual(full.push.apns, { keyFile: '/k.p8', keyId: 'K', teamId: 'T', topic: 'app', origin: 'https://api.push.apple.com' });
  assert.equal(full.push.webPush, undefined);
  assert.equal(loadConfig({ FCM_ORIGIN: 'https://fcm.example' }).push.fcm, undefined);
});

test('secret values are never quoted in an error, whichever rule fails', () => {
  const value = 'postgres-or-redis-or-key-value-that-must-not-leak';
  const cases: Array<[string, Record<string, string>]> = [
    ['JWT_SECRET', { JWT_SECRET: 'short-secret' }],
    ['ADMIN_TOKEN', { ADMIN_TOKEN: 'short-token' }],
    ['DATABASE_URL', { DATABASE_URL: `mysql://${value}` }],
    ['REDIS_URL', { REDIS_URL: `http://${value}` }],
    ['VAPID_PRIVATE_KEY', { VAPID_PRIVATE_KEY: value }],
  ];
  for (const [name, env] of cases) {
    const message = configError(env);
    assert.match(message, new RegExp(`\\b${name}\\b`), name);
    assert.ok(!message.includes(env[name]!), `${name}'s value appears in: ${message}`);
  }
});

test('the worker index and systemd\'s variables are read here, like every other setting', () => {
  const c = loadConfig({ ONEBOX_WORKER: '2', NOTIFY_SOCKET: '/run/n.sock', WATCHDOG_USEC: '400000', WATCHDOG_PID: '42' });
  assert.equal(c.workerIndex, 2);
  assert.deepEqual({ ...c.systemd }, { notifySocket: '/run/n.sock', watchdogUsec: 400_000, watchdogPid: 42 });
  assert.equal(loadConfig({}).workerIndex, undefined);
  assert.match(configError({ ONEBOX_WORKER: 'first' }), /ONEBOX_WORKER/);
  const names = environmentVariables().map((v) => v.name);
  assert.equal(new Set(names).size, names.length, 'no variable is read twice');
  for (const name of ['ONEBOX_WORKER', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) assert.ok(names.includes(name), name);
});

test('a worker\'s environment carries its index and port, and none of systemd\'s variables', () => {
  const parent = { PATH: '/bin', NOTIFY_SOCKET: '/run/n.sock', WATCHDOG_USEC: '400000', WATCHDOG_PID: '42', WORKERS: '3', REDIS_URL: 'redis://r' };
  const env = workerEnvironment(1, { port: 9000, workers: 3 }, parent);
  // Undefined, not absent: cluster.fork merges the parent's environment under this one.
  for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) assert.ok(name in env && env[name] === undefined, name);
  const c = loadConfig(env);
  assert.deepEqual([c.workerIndex, c.port, c.workers, c.redisUrl, c.systemd.notifySocket], [1, 9000, 3, 'redis://r', undefined]);
});

test('the TEST_* sign-in provider endpoints need TEST_MODE=true; the Apple key is all or none', () => {
  for (const name of ['TEST_APPLE_JWKS_URL', 'TEST_APPLE_TOKEN_URL', 'TEST_APPLE_REVOKE_URL', 'TEST_GOOGLE_JWKS_URL']) {
    assert.throws(() => loadConfig({ [name]: 'http://127.0.0.1:9/x' }), (e: unknown) => e instanceof ConfigError && e.message.includes(name), name);
  }
  const c = loadConfig({ TEST_MODE: 'true', TEST_GOOGLE_JWKS_URL: 'http://127.0.0.1:9/certs', GOOGLE_CLIENT_IDS: 'a.apps.googleusercontent.com, b' });
  assert.deepEqual([c.google.testJwksUrl, c.google.clientIds], ['http://127.0.0.1:9/certs', ['a.apps.googleusercontent.com', 'b']]);
  assert.throws(() => loadConfig({ APPLE_KEY_FILE: '/k.p8', APPLE_KEY_ID: 'K' }), (e: unknown) => e instanceof ConfigError && e.message.includes('APPLE_TEAM_ID'));
  assert.deepEqual(loadConfig({ APPLE_KEY_FILE: '/k.p8', APPLE_KEY_ID: 'K', APPLE_TEAM_ID: 'T' }).apple.key, { file: '/k.p8', id: 'K', teamId: 'T' });
  assert.equal(loadConfig({}).apple.key, undefined);
});

test('mail: SMTP_URL picks SMTP and needs MAIL_FROM; without it mail is logged in development (no JWT_SECRET) and off in production', () => {
  const secret = 'x'.repeat(32);
  assert.equal(loadConfig({}).mailMode, 'log');
  assert.equal(loadConfig({ JWT_SECRET: secret }).mailMode, 'off');
  assert.equal(loadConfig({ JWT_SECRET: secret, SMTP_URL: 'smtp://mail.example:587', MAIL_FROM: 'a@example.com' }).mailMode, 'smtp');
  assert.throws(() => loadConfig({ SMTP_URL: 'smtp://u:hunter2@mail.example' }), (e: unknown) => e instanceof ConfigError && /MAIL_FROM/.test(e.message));
  assert.throws(
    () => loadConfig({ SMTP_URL: 'http://u:hunter2@mail.example', MAIL_FROM: 'a@example.com' }),
    (e: unknown) => e instanceof ConfigError && /SMTP_URL=\[redacted\]/.test(e.message) && !e.message.includes('hunter2'),
  );
  assert.equal(loadConfig({ APP_URL: 'https://app.example.com/' }).appUrl, 'https://app.example.com', 'no trailing slash');
  const c = loadConfig({});
  assert.deepEqual([c.passwordResetTtlS, c.emailVerifyTtlS, c.mailPerAddressPerHour, c.freshLoginS], [1800, 86_400, 5, 300]);
});

test('SIGNUP_ENUMERATION_SAFE needs REQUIRE_EMAIL_VERIFICATION, which needs SMTP_URL once JWT_SECRET is set', () => {
  assert.throws(() => loadConfig({ SIGNUP_ENUMERATION_SAFE: 'true' }), (e: unknown) => e instanceof ConfigError && /SIGNUP_ENUMERATION_SAFE/.test(e.message));
  assert.throws(
    () => loadConfig({ REQUIRE_EMAIL_VERIFICATION: 'true', JWT_SECRET: 'x'.repeat(32) }),
    (e: unknown) => e instanceof ConfigError && /REQUIRE_EMAIL_VERIFICATION.*SMTP_URL/.test(e.message),
  );
  assert.equal(loadConfig({ REQUIRE_EMAIL_VERIFICATION: 'true', SIGNUP_ENUMERATION_SAFE: 'true' }).signupEnumerationSafe, true, 'development logs the mails');
});
