/**
 * Sessions over real stores (SQLite and PostgreSQL): rotation, reuse detection and the grace
 * re-issue in SessionStore; the revocation state and its spreading (Revocations) between two
 * "processes" sharing one store, through a real Redis and by polling while it is down.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RevocationState, Revocations, type ConnFilter, type Revocation } from '../../src/app/auth/revocations.js';
import { Sessions } from '../../src/app/auth/sessions.js';
import type { AppError } from '../../src/errors.js';
import { KnownUsers } from '../../src/app/auth/known-users.js';
import { TokenService, tokenAuthenticator } from '../../src/app/auth/tokens.js';
import { createLogger } from '../../src/observability/logger.js';
import { RedisBroadcast } from '../../src/realtime/backplane/broadcast-redis.js';
import { openDb, type Db } from '../../src/store/db.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { SessionStore, hashRefreshToken, newRefreshToken } from '../../src/store/sessions.js';
import { UserStore } from '../../src/store/users.js';
import { eventually } from '../kit/eventually.js';
import { createTestStore, type TestStore } from '../kit/pg.js';
import { startRedis, type RedisServer } from '../kit/redis.js';

const DAY = 86_400_000;
const log = createLogger('silent');

test('RevocationState: a revoked sid and a cutoff refuse exactly their tokens; a repeat is not news; entries expire', () => {
  const state = new RevocationState(1000);
  assert.equal(state.refuses({ userId: 'u', sid: 'a', iat: 100 }), false);
  const first = state.apply({ userId: 'u', sids: ['a'], at: 10_000 });
  assert.ok(first);
  assert.deepEqual([first({ sid: 'a' }), first({ sid: 'b' }), first({ sid: null })], [true, false, false]);
  assert.equal(state.refuses({ userId: 'u', sid: 'a', iat: 100 }), true);
  assert.equal(state.refuses({ userId: 'u', sid: 'b', iat: 100 }), false);
  assert.equal(state.apply({ userId: 'u', sids: ['a'], at: 10_000 }), null, 'already known: nothing to close');
  // Logout-all from session k at t=50 s: every token of u before 50 s but k's.
  const all = state.apply({ userId: 'u', sids: ['b'], notBefore: 50, exceptSid: 'k', at: 50_000 });
  assert.ok(all);
  // Connections: those of the sessions it names, and those without a session.
  assert.deepEqual([all({ sid: 'b' }), all({ sid: 'k' }), all({ sid: 'c' }), all({ sid: null })], [true, false, false, true]);
  assert.deepEqual(
    [
      state.refuses({ userId: 'u', sid: 'k', iat: 10 }),
      state.refuses({ userId: 'u', sid: 'c', iat: 49 }),
      state.refuses({ userId: 'u', iat: 49 }),
      state.refuses({ userId: 'u', sid: 'c', iat: 50 }),
      state.refuses({ userId: 'other', iat: 1 }),
    ],
    [false, true, true, false, false],
  );
  state.prune(11_001);
  assert.equal(state.refuses({ userId: 'u', sid: 'a', iat: 100 }), false, 'a sid goes once its last token has expired');
  assert.equal(state.refuses({ userId: 'u', sid: 'b', iat: 100 }), true);
  state.prune(51_001);
  assert.equal(state.size, 0);
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`sessions on ${dialect}`, () => {
    let t: TestStore;
    let db: Db;
    let store: SessionStore;
    let users: UserStore;
    let n = 0;
    const user = async () => (await users.create(`s${n++}@example.com`, 'x', null))!.id;
    const rotateOpts = (next: string, now: number, graceMs = 30_000) => ({ nextHash: hashRefreshToken(next), now, ttlMs: DAY, graceMs });

    before(async () => {
      t = await createTestStore(dialect);
      db = await openDb(t.config);
      await migrateToLatest(db);
      store = new SessionStore(db);
      users = new UserStore(db);
    });
    after(async () => {
      await db.destroy();
      await t.cleanup();
    });

    test('rotation: the new token works once, the old one is rotated; unknown and expired tokens are invalid', async () => {
      const uid = await user();
      const t1 = newRefreshToken();
      const s = await store.create(uid, 'phone', hashRefreshToken(t1), 1000, DAY);
      const t2 = newRefreshToken();
      const r = await store.rotate(hashRefreshToken(t1), rotateOpts(t2, 2000));
      assert.equal(r.kind, 'rotated');
      assert.ok(r.kind === 'rotated' && !r.reissued && r.session.id === s.id && r.session.expires_at === 2000 + DAY && r.session.last_used_at === 2000);
      const t3 = newRefreshToken();
      assert.equal((await store.rotate(hashRefreshToken(t2), rotateOpts(t3, 3000))).kind, 'rotated');
      assert.equal((await store.rotate(hashRefreshToken(newRefreshToken()), rotateOpts(newRefreshToken(), 3000))).kind, 'invalid');
      assert.equal((await store.rotate(hashRefreshToken(t3), rotateOpts(newRefreshToken(), 3000 + DAY))).kind, 'invalid', 'expired');
    });

    test('reuse after the grace revokes the whole session: its current token stops working too', async () => {
      const uid = await user();
      const t1 = newRefreshToken();
      const s = await store.create(uid, null, hashRefreshToken(t1), 1000, DAY);
      const t2 = newRefreshToken();
      await store.rotate(hashRefreshToken(t1), rotateOpts(t2, 2000));
      const reuse = await store.rotate(hashRefreshToken(t1), rotateOpts(newRefreshToken(), 2000 + 30_001));
      assert.equal(reuse.kind, 'reused');
      assert.ok(reuse.kind === 'reused' && reuse.session.id === s.id && reuse.session.revoked_at === 2000 + 30_001);
      assert.equal((await store.rotate(hashRefreshToken(t2), rotateOpts(newRefreshToken(), 40_000))).kind, 'revoked');
      assert.equal((await store.rotate(hashRefreshToken(t1), rotateOpts(newRefreshToken(), 40_000))).kind, 'revoked');
      assert.deepEqual(await store.list(uid, 40_000), []);
      assert.ok((await store.revokedSince(2000 + 30_001)).some((r) => r.id === s.id));
    });

    test('within the grace a rotated token is answered again with a fresh token; with grace 0 it is reuse at once', async () => {
      const uid = await user();
      const t1 = newRefreshToken();
      await store.create(uid, null, hashRefreshToken(t1), 1000, DAY);
      const lost = newRefreshToken();
      await store.rotate(hashRefreshToken(t1), rotateOpts(lost, 2000));
      const t3 = newRefreshToken();
      const again = await store.rotate(hashRefreshToken(t1), rotateOpts(t3, 2000 + 30_000));
      assert.ok(again.kind === 'rotated' && again.reissued);
      assert.equal((await store.rotate(hashRefreshToken(t3), rotateOpts(newRefreshToken(), 40_000))).kind, 'rotated', 'the re-issued token works');

      const u2 = await user();
      const a = newRefreshToken();
      await store.create(u2, null, hashRefreshToken(a), 1000, DAY);
      await store.rotate(hashRefreshToken(a), rotateOpts(newRefreshToken(), 2000, 0));
      assert.equal((await store.rotate(hashRefreshToken(a), rotateOpts(newRefreshToken(), 2000, 0))).kind, 'reused');
    });

    test('two concurrent refreshes with one token: one rotates, the other is re-issued, and both new tokens are stored', async () => {
      const uid = await user();
      const t1 = newRefreshToken();
      await store.create(uid, null, hashRefreshToken(t1), 1000, DAY);
      const [a, b] = [newRefreshToken(), newRefreshToken()];
      const results = await Promise.all([store.rotate(hashRefreshToken(t1), rotateOpts(a, 2000)), store.rotate(hashRefreshToken(t1), rotateOpts(b, 2000))]);
      assert.deepEqual(results.map((r) => r.kind === 'rotated' && r.reissued).sort(), [false, true]);
      // Whichever came last is the current token.
      const last = results[0]!.kind === 'rotated' && results[0]!.reissued ? a : b;
      assert.equal((await store.rotate(hashRefreshToken(last), rotateOpts(newRefreshToken(), 3000))).kind, 'rotated');
    });

    test('revokeAll keeps the named session, sets the cutoff, and the lists and polls show it', async () => {
      const uid = await user();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await store.create(uid, `d${i}`, hashRefreshToken(newRefreshToken()), 1000 + i, DAY)).id);
      assert.deepEqual((await store.list(uid, 5000)).map((s) => s.label), ['d2', 'd1', 'd0'], 'newest first');
      assert.equal(await store.revoke(uid, ids[0]!, 5000), true);
      assert.equal(await store.revoke(uid, ids[0]!, 5000), false, 'already revoked');
      assert.equal(await store.revoke('someone-else', ids[1]!, 5000), false, "another user's session");
      const revoked = await store.revokeAll(uid, ids[2], 6000, 6);
      assert.deepEqual(revoked, [ids[1]]);
      assert.deepEqual((await store.list(uid, 7000)).map((s) => s.id), [ids[2]]);
      const cutoffs = (await store.cutoffsSince(6000)).filter((c) => c.user_id === uid);
      assert.deepEqual(cutoffs.map((c) => [c.not_before, c.except_sid]), [[6, ids[2]]]);
      assert.deepEqual((await store.revokedSince(5000)).filter((r) => ids.includes(r.id)).map((r) => r.id).sort(), [ids[0], ids[1]].sort());
    });

    test('sweep deletes sessions expired or revoked before the bound, with their tokens, and old cutoffs', async () => {
      const uid = await user();
      const old = newRefreshToken();
      await store.create(uid, null, hashRefreshToken(old), 1000, 1000);
      const live = await store.create(uid, null, hashRefreshToken(newRefreshToken()), 1000, DAY);
      await store.revokeAll(uid, live.id, 1500, 1);
      assert.ok((await store.sweep(2500)) >= 1);
      assert.equal(await store.byRefreshHash(hashRefreshToken(old)), undefined);
      assert.deepEqual((await store.list(uid, 3000)).map((s) => s.id), [live.id]);
      assert.deepEqual((await store.cutoffsSince(0)).filter((c) => c.user_id === uid), []);
    });

    test('sweep deletes a live session’s rotated tokens once they have expired, and keeps the session', async () => {
      const uid = await user();
      const t1 = newRefreshToken();
      const s = await store.create(uid, null, hashRefreshToken(t1), 1000, DAY);
      const t2 = newRefreshToken();
      await store.rotate(hashRefreshToken(t1), rotateOpts(t2, 2000));
      await store.sweep(1000 + DAY + 1);
      assert.equal(await store.byRefreshHash(hashRefreshToken(t1)), undefined);
      assert.equal((await store.byRefreshHash(hashRefreshToken(t2)))?.id, s.id);
      assert.equal((await store.rotate(hashRefreshToken(t2), rotateOpts(newRefreshToken(), 1000 + DAY + 2))).kind, 'rotated');
    });

    test('a session for a deleted user is refused by the foreign key, and the user’s sessions go with the user', async () => {
      const uid = await user();
      await store.create(uid, null, hashRefreshToken(newRefreshToken()), 1000, DAY);
      await db.deleteFrom('users').where('id', '=', uid).execute();
      assert.deepEqual(await store.list(uid, 2000), []);
      await assert.rejects(store.create(uid, null, hashRefreshToken(newRefreshToken()), 1000, DAY), (err: { code?: string }) => err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || err.code === '23503');
    });

    test('a login whose checked password changed before its session was stored (a reset or change racing it) gets no session', async () => {
      const uid = await user();
      const checked = (await users.byId(uid))!;
      const state = new RevocationState(60_000);
      const revocations = new Revocations({ store, state, closeSockets: () => {}, log, retainMs: 60_000 });
      const tokens = new TokenService('k'.repeat(40), 900, () => true, (c) => state.refuses(c));
      const sessions = new Sessions(store, users, tokens, revocations, new KnownUsers(async () => true, 5000), { refreshTtlS: 86_400, reuseGraceS: 30 });
      // The reset commits and revokes every session while the login still hashes the old password.
      await db.updateTable('users').set({ password_hash: 'new' }).where('id', '=', uid).execute();
      await sessions.revokeAll(uid);
      await assert.rejects(sessions.start(uid, { user: checked }), (err: AppError) => err.code === 'invalid_credentials');
      assert.deepEqual(await store.list(uid, Date.now()), [], 'no live session outlives the reset');
      // The same login against the current password opens its session.
      const ok = await sessions.start(uid, { user: (await users.byId(uid))! });
      assert.deepEqual((await store.list(uid, Date.now())).map((r) => r.id), [(await tokens.claims(ok.token)).sid]);
    });

    describe('revocations between two processes sharing the store', () => {
      let redis: RedisServer;
      before(async () => {
        redis = await startRedis();
      });
      after(async () => {
        await redis.stop();
      });

      /** A "process": its own state, token service, sessions and revocation spreading, over the shared store. */
      function processOn(bus: RedisBroadcast | undefined) {
        const closed: Array<{ userId: string; which: ConnFilter }> = [];
        const state = new RevocationState(60_000);
        const revocations = new Revocations({ store, state, closeSockets: (userId, which) => closed.push({ userId, which }), bus, log, retainMs: 60_000 });
        const tokens = new TokenService('k'.repeat(40), 900, () => true, (c) => state.refuses(c));
        const sessions = new Sessions(store, users, tokens, revocations, new KnownUsers(async () => true, 5000), { refreshTtlS: 86_400, reuseGraceS: 30 });
        return { closed, state, revocations, tokens, sessions };
      }

      test('boot loads the revocations still in force; the gateway’s token check (upgrade and auth op) refuses them as session_revoked', async () => {
        const a = processOn(undefined);
        const uid = await user();
        const s1 = await a.sessions.start(uid);
        await a.sessions.revokeAll(uid);
        const b = processOn(undefined);
        await b.revocations.load();
        const claims = await a.tokens.verify(s1.token, false).catch((e: { code: string }) => e.code);
        assert.equal(claims, 'session_revoked');
        await assert.rejects(b.tokens.verify(s1.token, false), { code: 'session_revoked' });
        const auth = await tokenAuthenticator(b.tokens)(s1.token);
        assert.deepEqual(auth.ok ? auth : auth.code, 'session_revoked');
        const fresh = await a.sessions.start(uid);
        const ok = await tokenAuthenticator(b.tokens)(fresh.token);
        assert.ok(ok.ok && ok.userId === uid && typeof ok.sid === 'string' && ok.exp! > ok.iat!, 'a session started after the logout-all is accepted');
      });

      test('over Redis: a logout on one process refuses the token and closes the sockets on the other; while Redis is down the other polls the store', async () => {
        const a = processOn(new RedisBroadcast(redis.url, 'ob:revoke', log));
        const busB = new RedisBroadcast(redis.url, 'ob:revoke', log);
        const b = processOn(busB);
        a.revocations.start();
        b.revocations.start();
        try {
          await eventually(() => busB.up, { what: 'the broadcast channel up on b', timeoutMs: 5000 });
          const uid = await user();
          const s1 = await a.sessions.start(uid, { label: 'phone' });
          const s2 = await a.sessions.start(uid, { label: 'tablet' });
          const c1 = await b.tokens.claims(s1.token);
          const c2 = await b.tokens.claims(s2.token);
          assert.notEqual(c1.sid, c2.sid);
          const told = (sid: string) => b.closed.some((c) => c.userId === uid && c.which({ sid }));
          assert.ok(await a.sessions.revoke(uid, c1.sid!));
          await eventually(() => told(c1.sid!), { what: 'b told to close the session’s sockets', timeoutMs: 2000 });
          assert.equal(told(c2.sid!), false, 'not the other session’s');
          await assert.rejects(b.tokens.verify(s1.token), { code: 'session_revoked' }, 'the cached verification is refused too');
          assert.equal(await b.tokens.verify(s2.token), uid, 'the other session still works');

          await redis.stop();
          await eventually(() => !busB.up, { what: 'b sees Redis down', timeoutMs: 5000 });
          const polls = b.revocations.polls;
          const t0 = Date.now();
          await a.sessions.revokeAll(uid);
          await eventually(() => told(c2.sid!), { what: 'b closes the sockets from a poll while Redis is down', timeoutMs: 3000 });
          assert.ok(b.revocations.polls > polls);
          assert.ok(Date.now() - t0 < 1500, `closed ${Date.now() - t0} ms after the revocation`);
          await assert.rejects(b.tokens.verify(s2.token), { code: 'session_revoked' });
        } finally {
          await a.revocations.stop();
          await b.revocations.stop();
          await redis.start();
        }
      });

      test('a revocation closes the user’s sockets at once and once more a tick or two later (connections that were still opening); a repeat closes nothing', async () => {
        const closed: number[] = [];
        const state = new RevocationState(60_000);
        const revocations = new Revocations({ store, state, closeSockets: () => closed.push(performance.now()), log, retainMs: 60_000 });
        revocations.start();
        try {
          const t0 = performance.now();
          revocations.publish({ userId: 'u', sids: ['s1'], at: Date.now() });
          assert.equal(closed.length, 1);
          await eventually(() => closed.length === 2, { what: 'the second pass', timeoutMs: 3000 });
          assert.ok(closed[1]! - t0 >= 400, 'on a later tick, not at once');
          revocations.publish({ userId: 'u', sids: ['s1'], at: Date.now() });
          assert.equal(closed.length, 2);
        } finally {
          await revocations.stop();
        }
      });

      test('a malformed broadcast is ignored; a well-formed one is applied once', async () => {
        let receive!: (text: string) => void;
        const bus = { up: true, publish: () => undefined, start: (r: (text: string) => void) => (receive = r), stop: async () => undefined };
        const closed: string[] = [];
        const state = new RevocationState(60_000);
        const revocations = new Revocations({ store, state, closeSockets: (u) => closed.push(u), bus, log, retainMs: 60_000 });
        revocations.start();
        for (const bad of ['nope', '{"userId":1,"sids":[],"at":1}', '{"userId":"u","sids":[1],"at":1}', '{"userId":"u","sids":[],"at":1,"exceptSid":2}']) receive(bad);
        const good: Revocation = { userId: 'u', sids: ['x'], at: Date.now() };
        receive(JSON.stringify(good));
        receive(JSON.stringify(good));
        await revocations.stop();
        assert.deepEqual(closed, ['u']);
        assert.equal(state.refuses({ userId: 'u', sid: 'x', iat: 0 }), true);
      });
    });
  });
}
