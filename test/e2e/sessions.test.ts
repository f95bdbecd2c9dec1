/**
 * Sessions end to end (issue 16): refresh rotation and reuse detection, logout and
 * logout-all closing live sockets with 4003 within a second, the session list, and the 401
 * codes a client branches on. Each behaviour once per engine; the store's variants
 * (PostgreSQL) and the several-process one (WORKERS=3 + Redis) once each. Rotation, the
 * grace and reuse in detail are unit tests (test/unit/sessions.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { signJwt } from '../../src/cli/bench/jwt.js';
import { eventually } from '../kit/eventually.js';
import { clusterConnections, metric } from '../kit/metrics.js';
import { createTestDatabase } from '../kit/pg.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { api, ENGINES, JWT_SECRET, signup, startServer, type Running } from '../kit/server.js';
import { connectWs, refusedUpgrade, type Client } from '../kit/ws.js';

const PASSWORD = 'correct horse battery';
const code = (r: { body: any }) => r.body?.error?.code;

const login = (url: string, email: string, label?: string) => api(url, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD, ...(label && { label }) } });
const refresh = (url: string, refreshToken: string) => api(url, 'POST', '/v1/auth/refresh', { body: { refreshToken } });

/** The socket closes with 4003 session_revoked within a second of `since` (performance.now()). */
async function closedRevoked(c: Client, since: number): Promise<void> {
  const closed = await c.waitClosed(3000);
  const ms = performance.now() - since;
  assert.deepEqual(closed, { code: 4003, reason: 'session_revoked' });
  assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the revocation`);
}

/** Refresh rotation and reuse, on a server whose reuse grace is 1 s. */
async function rotationAndReuse(url: string, wsUrl: string): Promise<void> {
  const u = await signup(url);
  const first = await login(url, u.email, 'phone');
  assert.equal(first.status, 200);
  const ws = await connectWs(wsUrl, first.body.token);
  const next = await refresh(url, first.body.refreshToken);
  assert.equal(next.status, 200);
  assert.deepEqual(Object.keys(next.body).sort(), ['expiresIn', 'refreshToken', 'token', 'user']);
  assert.notEqual(next.body.refreshToken, first.body.refreshToken);
  assert.equal(next.body.user.id, u.id);
  assert.equal((await api(url, 'GET', '/v1/me', { token: next.body.token })).status, 200);
  // Within the grace the old token is answered again (the first answer was lost); after it,
  // presenting it is reuse and revokes the session.
  assert.equal((await refresh(url, first.body.refreshToken)).status, 200, 'within REFRESH_REUSE_GRACE_S');
  const reused = await eventually(
    async () => {
      const r = await refresh(url, first.body.refreshToken);
      return r.status === 401 ? r : null;
    },
    { what: 'the rotated refresh token refused once the 1 s grace is over', timeoutMs: 5000, intervalMs: 200 },
  );
  const t0 = performance.now();
  assert.equal(code(reused), 'session_revoked');
  await closedRevoked(ws, t0);
  assert.equal(code(await api(url, 'GET', '/v1/me', { token: next.body.token })), 'session_revoked', "the session's access tokens die with it");
  assert.equal(code(await refresh(url, next.body.refreshToken)), 'session_revoked', 'so does its latest refresh token');
  assert.equal((await api(url, 'GET', '/v1/me', { token: u.token })).status, 200, 'the signup session is another one');
}

for (const engine of ENGINES) {
  describe(`sessions on ${engine}`, () => {
    let s: Running;
    before(async () => {
      s = await startServer(engine, { AUTH_RATE_PER_MIN: '1000', REFRESH_REUSE_GRACE_S: '1' });
    });
    after(() => s.stop());

    test('refresh rotates; a rotated token is re-issued within the grace, then revokes the session: 401 session_revoked and its socket closes with 4003', async () => {
      await rotationAndReuse(s.url, s.wsUrl);
    });

    test('sessions list without secrets; deleting one and logout end only that session, its socket closing with 4003 within a second', async () => {
      const u = await signup(s.url);
      const phone = await login(s.url, u.email, 'phone');
      const tablet = await login(s.url, u.email, 'tablet');
      const list = await api(s.url, 'GET', '/v1/me/sessions', { token: phone.body.token });
      assert.equal(list.status, 200);
      assert.equal(list.body.sessions.length, 3, 'signup, phone, tablet');
      const byLabel = new Map<string, any>(list.body.sessions.map((x: any) => [x.label, x]));
      assert.deepEqual([byLabel.get('phone')?.current, byLabel.get('tablet')?.current], [true, false]);
      for (const x of list.body.sessions) assert.deepEqual(Object.keys(x).sort(), ['createdAt', 'current', 'expiresAt', 'id', 'label', 'lastUsedAt']);
      const tabletId = byLabel.get('tablet').id;
      const [phoneWs, tabletWs] = [await connectWs(s.wsUrl, phone.body.token), await connectWs(s.wsUrl, tablet.body.token)];

      let t0 = performance.now();
      assert.equal((await api(s.url, 'DELETE', `/v1/me/sessions/${tabletId}`, { token: phone.body.token })).status, 204);
      await closedRevoked(tabletWs, t0);
      assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: tablet.body.token })), 'session_revoked');
      assert.equal(code(await refresh(s.url, tablet.body.refreshToken)), 'session_revoked');
      assert.equal((await api(s.url, 'DELETE', `/v1/me/sessions/${tabletId}`, { token: phone.body.token })).status, 404, 'already ended');
      const other = await signup(s.url);
      assert.equal(code(await api(s.url, 'DELETE', `/v1/me/sessions/${tabletId}`, { token: other.token })), 'not_found');
      await phoneWs.sync();

      t0 = performance.now();
      assert.equal((await api(s.url, 'POST', '/v1/auth/logout', { token: phone.body.token })).status, 204);
      await closedRevoked(phoneWs, t0);
      assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: phone.body.token })), 'session_revoked');
      assert.equal((await refusedUpgrade(`${s.wsUrl}?token=${phone.body.token}`)).body.error.code, 'session_revoked');
      assert.equal((await api(s.url, 'GET', '/v1/me', { token: u.token })).status, 200, 'the signup session lives on');
      // Logout by refresh token (the access token may have expired): idempotent.
      const third = await login(s.url, u.email);
      for (let i = 0; i < 2; i++) assert.equal((await api(s.url, 'POST', '/v1/auth/logout', { body: { refreshToken: third.body.refreshToken } })).status, 204);
      assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: third.body.token })), 'session_revoked');
      assert.equal(code(await api(s.url, 'POST', '/v1/auth/logout')), 'unauthorized');
    });

    test('logout by bearer token with a JSON Content-Type but no body (clients that set it on every request) ends the session', async () => {
      const u = await signup(s.url);
      const r = await api(s.url, 'POST', '/v1/auth/logout', { token: u.token, headers: { 'content-type': 'application/json', 'content-length': '0' } });
      assert.equal(r.status, 204, JSON.stringify(r.body));
      assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: u.token })), 'session_revoked');
    });

    test('logout-all ends every session and closes all the user’s sockets within a second', async () => {
      const u = await signup(s.url);
      const a = await login(s.url, u.email);
      const sockets = [await connectWs(s.wsUrl, u.token), await connectWs(s.wsUrl, a.body.token), await connectWs(s.wsUrl, a.body.token)];
      const bystander = await signup(s.url);
      const theirs = await connectWs(s.wsUrl, bystander.token);
      const t0 = performance.now();
      assert.equal((await api(s.url, 'POST', '/v1/auth/logout-all', { token: a.body.token })).status, 204);
      for (const c of sockets) await closedRevoked(c, t0);
      for (const t of [u.token, a.body.token]) assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: t })), 'session_revoked');
      assert.ok((await metric(s.url, 'onebox_revocations_held')) >= 3, 'two sessions and the cutoff held in memory');
      assert.equal(code(await refresh(s.url, u.refreshToken)), 'session_revoked');
      await theirs.sync();
      assert.equal((await api(s.url, 'GET', '/v1/me', { token: bystander.token })).status, 200);
      theirs.close();
    });

    test('401 codes: an expired access token is token_expired, an unknown refresh token invalid_refresh_token; a bad body 400', async () => {
      const u = await signup(s.url);
      const now = Math.floor(Date.now() / 1000);
      const expired = signJwt({ alg: 'HS256', typ: 'JWT' }, { sub: u.id, iss: 'onebox', aud: 'onebox:access', iat: now - 1000, exp: now - 10 }, JWT_SECRET);
      assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: expired })), 'token_expired');
      const r = await refresh(s.url, 'not-a-refresh-token');
      assert.deepEqual([r.status, code(r)], [401, 'invalid_refresh_token']);
      const bad = await api(s.url, 'POST', '/v1/auth/refresh', { body: { refreshToken: 7 } });
      assert.deepEqual([bad.status, code(bad)], [400, 'validation_failed']);
    });
  });
}

describe('sessions on PostgreSQL (bun)', () => {
  let s: Running;
  let drop: () => Promise<void>;
  before(async () => {
    const db = await createTestDatabase();
    drop = db.drop;
    s = await startServer('bun', { DATABASE_URL: db.url, AUTH_RATE_PER_MIN: '1000', REFRESH_REUSE_GRACE_S: '1' });
  });
  after(async () => {
    await s.stop();
    await drop();
  });

  test('refresh rotates; reuse after the grace revokes the session and closes its socket', async () => {
    await rotationAndReuse(s.url, s.wsUrl);
  });
});

describe('sessions with WORKERS=3 and Redis (bun)', () => {
  let redis: RedisServer;
  let s: Running;
  before(async () => {
    redis = await startRedis();
    s = await startServer('bun', { WORKERS: '3', REDIS_URL: redis.url, AUTH_RATE_PER_MIN: '1000' });
  });
  after(async () => {
    await s.stop();
    await redis.stop();
  });

  test('logout and logout-all close the sockets on every worker within a second; the tokens are refused on every worker', async () => {
    const u = await signup(s.url);
    const a = await login(s.url, u.email);
    const b = await login(s.url, u.email);
    const ofA: Client[] = [];
    const ofB: Client[] = [];
    for (let i = 0; i < 6; i++) ofA.push(await connectWs(s.wsUrl, a.body.token));
    for (let i = 0; i < 6; i++) ofB.push(await connectWs(s.wsUrl, b.body.token));
    await eventually(
      async () => {
        const t = await clusterConnections(s.url);
        return [...t.values()].reduce((n, w) => n + w.n, 0) === 12 && [...t.values()].filter((w) => w.n > 0).length >= 2;
      },
      { what: 'the 12 connections counted, spread over at least two workers' },
    );
    let t0 = performance.now();
    assert.equal((await api(s.url, 'POST', '/v1/auth/logout', { token: a.body.token })).status, 204);
    await Promise.all(ofA.map((c) => closedRevoked(c, t0)));
    for (const c of ofB) await c.sync();
    // Each request may land on another worker: every one refuses.
    for (let i = 0; i < 6; i++) assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: a.body.token })), 'session_revoked');

    t0 = performance.now();
    assert.equal((await api(s.url, 'POST', '/v1/auth/logout-all', { token: u.token })).status, 204);
    await Promise.all(ofB.map((c) => closedRevoked(c, t0)));
    for (let i = 0; i < 6; i++) assert.equal(code(await api(s.url, 'GET', '/v1/me', { token: b.body.token })), 'session_revoked');
  });
});
