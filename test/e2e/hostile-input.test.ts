/**
 * Hostile input found after issue 11's fixes, black-box on both engines and both stores:
 * each case once answered 500 (or 502) and must get the same 4xx code everywhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, ENGINES, signup, startServer, type Running } from '../helpers/server.js';
import { createTestDatabase } from '../helpers/pg.js';

for (const engine of ENGINES) {
  for (const store of ['sqlite', 'postgres'] as const) {
    describe(`hostile ids on ${engine} with ${store}`, () => {
      let s: Running;
      let u: { token: string; id: string };
      let dropDb: () => Promise<void> = async () => undefined;
      before(async () => {
        const env: Record<string, string> = {};
        if (store === 'postgres') {
          const t = await createTestDatabase();
          env.DATABASE_URL = t.url;
          dropDb = t.drop;
        }
        s = await startServer(engine, env);
        u = await signup(s.url);
      });
      after(async () => {
        await s.stop();
        await dropDb();
      });

      test('a path parameter holding U+0000 is 404 not_found on every store', async () => {
        for (const [token, path] of [
          [u.token, '/v1/devices/%00'],
          [u.token, '/v1/devices/a%00b'],
          [ADMIN_TOKEN, '/v1/users/%00/dashboard'],
          [ADMIN_TOKEN, `/v1/users/${u.id}%00/dashboard`],
        ] as const) {
          const method = path.startsWith('/v1/devices') ? 'DELETE' : 'GET';
          const r = await api(s.url, method, path, { token });
          assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
          assert.equal(r.body.error.code, 'not_found', path);
        }
        // The same routes still answer for real ids.
        assert.equal((await api(s.url, 'GET', `/v1/users/${u.id}/dashboard`, { token: ADMIN_TOKEN })).status, 200);
      });
    });
  }
}
