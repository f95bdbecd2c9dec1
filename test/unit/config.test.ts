import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

test('defaults follow DESIGN.md', () => {
  const c = loadConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.engine, 'bun');
  assert.equal(c.workers, 1);
  assert.equal(c.pingIntervalMs, 30_000);
  assert.equal(c.idleTimeoutMs, 75_000);
  assert.ok(Object.isFrozen(c));
});

test('idle timeout derives from the ping interval unless set', () => {
  assert.equal(loadConfig({ PING_INTERVAL_MS: '1000' }).idleTimeoutMs, 2500);
  assert.equal(loadConfig({ PING_INTERVAL_MS: '1000', IDLE_TIMEOUT_MS: '5000' }).idleTimeoutMs, 5000);
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
  for (const env of [{ FAULT_STORE_DELAY_MS: '100' }, { FAULT_BLOCK_ROUTE: 'true' }, { FAULT_BLOCK_ROUTE: 'true', TEST_MODE: 'false' }]) {
    const name = Object.keys(env)[0]!;
    assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && e.message.includes(name), JSON.stringify(env));
  }
  const c = loadConfig({ TEST_MODE: 'true', FAULT_STORE_DELAY_MS: '100', FAULT_BLOCK_ROUTE: 'true' });
  assert.deepEqual([c.testMode, c.faultStoreDelayMs, c.faultBlockRoute], [true, 100, true]);
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
