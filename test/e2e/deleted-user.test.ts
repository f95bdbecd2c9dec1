/**
 * Issue 11, item 7: once a user row is gone, their still-valid token is `invalid_token`
 * everywhere: reads, writes and the WebSocket upgrade, on both engines and both stores.
 * The test deletes the row in the store directly, as an operator or another box would
 * (`DELETE /v1/me` itself is tested in accounts.test.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { eventually } from '../kit/eventually.js';
import { createTestDatabase } from '../kit/pg.js';
import { api, ENGINES, signup, startServer } from '../kit/server.js';
import { connectWs, refusedUpgrade } from '../kit/ws.js';

type Store = 'sqlite' | 'postgres';
const ANDROID = (n: number) => ({ platform: 'android', token: `fcm-token-${n}-${'x'.repeat(24)}` });
const event = () => ({ events: [{ type: 'app.open', ts: Date.now() }] });

/** A server on `store` whose user rows the test can delete behind its back. */
async function startWithStore(engine: (typeof ENGINES)[number], store: Store, env: Record<string, string>) {
  let dbEnv: Record<string, string> = {};
  let drop = async () => undefined as void;
  if (store === 'postgres') {
    const t = await createTestDatabase();
    dbEnv = { DATABASE_URL: t.url };
    drop = t.drop;
  }
  const s = await startServer(engine, { ...dbEnv, AUTH_RATE_PER_MIN: '1000', ...env });
  const deleteUser = async (id: string) => {
    if (store === 'sqlite') {
      const db = new Database(join(s.dataDir, 'onebox.sqlite'));
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      const n = db.prepare('delete from users where id = ?').run(id).changes;
      db.close();
      assert.equal(n, 1, 'the user row was deleted');
    } else {
      const c = new pg.Client({ connectionString: dbEnv.DATABASE_URL });
      await c.connect();
      const r = await c.query('delete from users where id = $1', [id]);
      await c.end();
      assert.equal(r.rowCount, 1, 'the user row was deleted');
    }
  };
  return { s, deleteUser, stop: async () => (await s.stop(), await drop()) };
}

const code = (r: { body: any }) => r.body?.error?.code;

for (const engine of ENGINES) {
  for (const store of ['sqlite', 'postgres'] as const) {
    describe(`a deleted user's token on ${engine} with ${store}`, () => {
      let short: Awaited<ReturnType<typeof startWithStore>>;
      let long: Awaited<ReturnType<typeof startWithStore>>;
      before(async () => {
        // USER_CHECK_TTL_MS short: a deletion is seen within it. Long: the cache still says
        // "exists", so a write meets the foreign key (the race between cache and deletion).
        [short, long] = await Promise.all([
          startWithStore(engine, store, { USER_CHECK_TTL_MS: '300' }),
          startWithStore(engine, store, { USER_CHECK_TTL_MS: '600000' }),
        ]);
      });
      after(async () => {
        await Promise.all([short?.stop(), long?.stop()]);
      });

      test('is 401 invalid_token on reads, writes and the WebSocket upgrade once USER_CHECK_TTL_MS has passed', async () => {
        const { s } = short;
        const gone = await signup(s.url, 'gone');
        const stays = await signup(s.url, 'stays');
        assert.equal((await api(s.url, 'POST', '/v1/devices', { token: gone.token, body: ANDROID(1) })).status, 201);
        assert.equal((await api(s.url, 'GET', '/v1/devices', { token: gone.token })).status, 200);
        const ws = await connectWs(s.wsUrl, gone.token);
        await ws.sync();
        ws.close();
        await short.deleteUser(gone.id);
        await eventually(async () => (await api(s.url, 'GET', '/v1/devices', { token: gone.token })).status === 401, {
          timeoutMs: 10_000,
          what: 'GET /v1/devices to answer 401 after the deletion',
        });
        const answers = {
          'GET /v1/devices': await api(s.url, 'GET', '/v1/devices', { token: gone.token }),
          'GET /v1/me': await api(s.url, 'GET', '/v1/me', { token: gone.token }),
          'PATCH /v1/me': await api(s.url, 'PATCH', '/v1/me', { token: gone.token, body: { displayName: 'x' } }),
          'POST /v1/devices': await api(s.url, 'POST', '/v1/devices', { token: gone.token, body: ANDROID(2) }),
          'POST /v1/events': await api(s.url, 'POST', '/v1/events', { token: gone.token, body: event() }),
          [`GET /v1/users/${gone.id}/dashboard`]: await api(s.url, 'GET', `/v1/users/${gone.id}/dashboard`, { token: gone.token }),
        };
        for (const [what, r] of Object.entries(answers)) {
          assert.equal(r.status, 401, what);
          assert.equal(code(r), 'invalid_token', what);
        }
        const byQuery = await refusedUpgrade(`${s.wsUrl}?token=${gone.token}`);
        const byHeader = await refusedUpgrade(s.wsUrl, { authorization: `Bearer ${gone.token}` });
        for (const r of [byQuery, byHeader]) {
          assert.equal(r.status, 401);
          assert.equal(r.body.error.code, 'invalid_token');
        }
        // Nobody else is affected.
        assert.equal((await api(s.url, 'GET', '/v1/devices', { token: stays.token })).status, 200);
        (await connectWs(s.wsUrl, stays.token)).close();
      });

      test('a write that meets the foreign key answers 401 invalid_token, not 500, and the next read agrees', async () => {
        const { s } = long;
        const gone = await signup(s.url, 'gone');
        assert.equal((await api(s.url, 'GET', '/v1/devices', { token: gone.token })).status, 200);
        await long.deleteUser(gone.id);
        // Within the TTL the cache still vouches for the user: the insert meets the foreign key.
        const device = await api(s.url, 'POST', '/v1/devices', { token: gone.token, body: ANDROID(3) });
        assert.equal(device.status, 401);
        assert.equal(code(device), 'invalid_token');
        // The failed write dropped the cached answer: reads see the deletion at once.
        const list = await api(s.url, 'GET', '/v1/devices', { token: gone.token });
        assert.equal(list.status, 401);
        assert.equal(code(list), 'invalid_token');
        assert.equal(s.lines.filter((l) => l.level === 'error').length, 0, 'nothing was logged as a server error');
      });

      test('events of a vanished user fail alone: a live user in the same grouped transaction gets 202', async () => {
        const { s } = long;
        const gone = await signup(s.url, 'gone');
        const live = await signup(s.url, 'live');
        assert.equal((await api(s.url, 'POST', '/v1/events', { token: gone.token, body: event() })).status, 202);
        await long.deleteUser(gone.id);
        // Sent together so that they are likely grouped into one transaction (2 ms linger).
        const [a, b] = await Promise.all([
          api(s.url, 'POST', '/v1/events', { token: gone.token, body: event() }),
          api(s.url, 'POST', '/v1/events', { token: live.token, body: event() }),
        ]);
        assert.equal(a.status, 401);
        assert.equal(code(a), 'invalid_token');
        assert.equal(b.status, 202);
        const dash = await api(s.url, 'GET', `/v1/users/${live.id}/dashboard`, { token: live.token });
        assert.equal(dash.status, 200);
        assert.equal(dash.body.metrics['app.open'].last7d, 1, "the live user's event was committed");
      });
    });
  }
}
