import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KnownUsers } from '../../src/app/auth/known-users.js';
import { SubTokenService, TokenService, upgradeAuthenticator } from '../../src/app/auth/tokens.js';
import { signJwt } from '../../src/cli/bench/jwt.js';
import { StoreProbe } from '../../src/app/store-probe.js';
import { loadConfig } from '../../src/config.js';
import { Gateway } from '../../src/realtime/gateway.js';
import { LocalLimits } from '../../src/lib/local-limits.js';
import { createLogger } from '../../src/observability/logger.js';

test('KnownUsers: a seen user costs no lookup within the TTL; a gone user stays gone; forget asks again', async () => {
  const rows = new Set(['alice', 'bob']);
  let calls = 0;
  const known = new KnownUsers(async (id) => (calls++, rows.has(id)), 60_000);
  assert.equal(await known.check('alice'), true);
  assert.equal(known.check('alice'), true, 'answered synchronously from the cache');
  assert.equal(calls, 1);
  // Concurrent first checks share one lookup.
  const both = await Promise.all([known.check('bob'), known.check('bob')]);
  assert.deepEqual(both, [true, true]);
  assert.equal(calls, 2);
  rows.delete('alice');
  assert.equal(known.check('alice'), true, 'within the TTL the deletion is not seen yet');
  known.forget('alice');
  assert.equal(await known.check('alice'), false);
  assert.equal(known.check('alice'), false, 'gone is remembered');
  assert.equal(calls, 3);
});

test('KnownUsers: TTL 0 asks the store every time, and the map stays bounded', async () => {
  let calls = 0;
  const known = new KnownUsers(async () => (calls++, true), 0, 2);
  await known.check('a');
  await known.check('a');
  assert.equal(calls, 2);
  const bounded = new KnownUsers(async () => true, 60_000, 2);
  for (const id of ['a', 'b', 'c']) await bounded.check(id);
  assert.equal(bounded.check('c'), true);
  assert.notEqual(bounded.check('a'), true, 'the oldest entry was dropped');
});

test('KnownUsers: a forget during a lookup wins over the lookup’s answer', async () => {
  let release!: (v: boolean) => void;
  const known = new KnownUsers(() => new Promise<boolean>((r) => (release = r)), 60_000);
  const first = known.check('u');
  known.forget('u');
  release(true);
  assert.equal(await first, true);
  assert.notEqual(known.check('u'), true, 'the stale positive was not cached');
});

test('TokenService: a valid token of a vanished user is invalid_token; a lookup failure is not', async () => {
  const rows = new Set<string>();
  let failing = false;
  const tokens = new TokenService('k'.repeat(40), 3600, (id) => {
    if (failing) return Promise.reject(new Error('store down'));
    return rows.has(id);
  });
  rows.add('alice');
  const t = await tokens.issue('alice');
  assert.equal(await tokens.verify(t), 'alice');
  rows.delete('alice');
  await assert.rejects(tokens.verify(t), { code: 'invalid_token' });
  await assert.rejects(tokens.verify(t, false), { code: 'invalid_token' });
  failing = true;
  await assert.rejects(tokens.verify(t), (err: { code?: string }) => err.code === undefined);
});

test('StoreProbe: one ping serves a second of probes; a hung ping fails at the deadline, alone', async () => {
  let pings = 0;
  let mode: 'ok' | 'fail' | 'hang' = 'ok';
  const probe = new StoreProbe(
    () => {
      pings++;
      if (mode === 'ok') return Promise.resolve();
      if (mode === 'fail') return Promise.reject(new Error('refused'));
      return new Promise(() => undefined);
    },
    50,
    createLogger('silent'),
  );
  assert.equal(await probe.reachable(), true);
  assert.equal(await probe.reachable(), true);
  assert.equal(pings, 1, 'cached');
  // Force staleness without sleeping out the cache: reach into the clock field.
  const stale = () => ((probe as unknown as { checkedAt: number }).checkedAt = 0);
  mode = 'fail';
  stale();
  assert.equal(await probe.reachable(), false);
  mode = 'hang';
  stale();
  const t0 = performance.now();
  assert.equal(await probe.reachable(), false);
  assert.ok(performance.now() - t0 < 1000, 'answered by the deadline');
  stale();
  assert.equal(await probe.reachable(), false);
  assert.equal(pings, 3, 'no second ping joins a hung one');
});

test('Gateway: an upgrade whose user is gone is 401 invalid_token; one the store cannot check is 503 store_unavailable', async () => {
  let mode: 'gone' | 'down' = 'gone';
  const tokens = new TokenService('k'.repeat(40), 3600, () => (mode === 'gone' ? false : Promise.reject(new Error('store down'))));
  const gw = new Gateway(loadConfig({ MAX_CONNECTIONS: '10' }), { authenticate: upgradeAuthenticator(tokens), log: createLogger('silent'), limits: new LocalLimits() });
  const token = await tokens.issue('alice');
  const upgrade = () => gw.authorize({ url: `/v1/ws?to%6Ben=${token}`, authorization: undefined, ip: '127.0.0.1', forwarded: undefined, version: '13', key: 'dGhlIHNhbXBsZSBub25jZQ==' });
  const gone = await upgrade();
  assert.ok(!gone.ok);
  assert.equal(gone.status, 401);
  assert.equal(JSON.parse(gone.body).error.code, 'invalid_token');
  mode = 'down';
  const down = await upgrade();
  assert.ok(!down.ok);
  assert.equal(down.status, 503);
  assert.equal(JSON.parse(down.body).error.code, 'store_unavailable');
  assert.ok(Number(down.headers['Retry-After']) >= 1);
  gw.stop();
});

test('subscription tokens: accepted for their user and topic or prefix; expired, foreign, forged or malformed ones refused with their codes', async () => {
  const secret = 's'.repeat(40);
  const subs = new SubTokenService(secret);
  const now = Math.floor(Date.now() / 1000);
  const forge = (claims: object, key: string | null = secret, alg = 'HS256') => signJwt({ alg, typ: 'JWT' }, { aud: 'onebox:sub', sub: 'alice', exp: now + 60, ...claims }, key);
  const cases: Array<[string, string, string, null | string]> = [
    [await subs.issue('alice', { topic: 'room:1' }, 60), 'alice', 'room:1', null],
    [await subs.issue('alice', { prefix: 'room:team-' }, 60), 'alice', 'room:team-7', null],
    [await subs.issue('alice', { topic: 'room:1' }, 60), 'bob', 'room:1', 'invalid_subscription_token'],
    [await subs.issue('alice', { topic: 'room:1' }, 60), 'alice', 'room:2', 'invalid_subscription_token'],
    [await subs.issue('alice', { prefix: 'room:team-' }, 60), 'alice', 'room:other', 'invalid_subscription_token'],
    [forge({ topic: 'room:1', exp: now - 10 }), 'alice', 'room:1', 'subscription_token_expired'],
    [forge({ topic: 'room:1' }, 'another-secret-another-secret-another'), 'alice', 'room:1', 'invalid_subscription_token'],
    [forge({ topic: 'room:1' }, null, 'none'), 'alice', 'room:1', 'invalid_subscription_token'],
    [forge({ topic: 'room:1', exp: undefined }), 'alice', 'room:1', 'invalid_subscription_token'],
    [forge({ prefix: '' }), 'alice', 'room:1', 'invalid_subscription_token'],
    [forge({}), 'alice', 'room:1', 'invalid_subscription_token'],
    [forge({ topic: 'room:1', aud: ['onebox:sub', 'onebox:access'] }), 'alice', 'room:1', 'invalid_subscription_token'],
    ['not.a.jwt', 'alice', 'room:1', 'invalid_subscription_token'],
  ];
  for (const [token, user, topic, code] of cases) assert.equal(await subs.check(token, user, topic), code, `${user} ${topic} ${token.slice(-12)}`);
});

test('an access token is never a subscription token, nor the reverse, even under one secret', async () => {
  const secret = 'k'.repeat(40);
  const tokens = new TokenService(secret, 3600);
  const subs = new SubTokenService(secret);
  const access = await tokens.issue('alice');
  assert.equal(await tokens.verify(access), 'alice');
  assert.equal(await subs.check(access, 'alice', 'room:1'), 'invalid_subscription_token');
  const sub = await subs.issue('alice', { topic: 'room:1' }, 60);
  await assert.rejects(tokens.verify(sub), { code: 'invalid_token' });
  const now = Math.floor(Date.now() / 1000);
  // Without an audience, or with both in a list: neither kind.
  for (const aud of [undefined, ['onebox:access', 'onebox:sub']]) {
    const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { sub: 'alice', iss: 'onebox', aud, exp: now + 60, topic: 'room:1' }, secret);
    await assert.rejects(tokens.verify(token), { code: 'invalid_token' }, JSON.stringify(aud));
    assert.equal(await subs.check(token, 'alice', 'room:1'), 'invalid_subscription_token');
  }
});
