/**
 * The store side of issue 16's mail flows and account deletion, on SQLite and PostgreSQL:
 * one-time tokens are single-use (also under a race between two clients), expire, are bound
 * to their kind and address, and a newer one supersedes the older; verification, change of
 * email and reset do all or nothing; deleting a user leaves no cell that names them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openDb, type Db } from '../../src/store/db.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { AccountStore } from '../../src/store/accounts.js';
import { OneTimeTokenStore, tokenHash } from '../../src/store/one-time-tokens.js';
import { UserStore } from '../../src/store/users.js';
import { DeviceStore } from '../../src/store/devices.js';
import { EventWriter } from '../../src/store/events.js';
import { MemberStore } from '../../src/store/members.js';
import { MessageLog } from '../../src/store/message-log.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { ReceiptStore } from '../../src/store/receipts.js';
import { IdempotencyStore } from '../../src/store/idempotency.js';
import { SessionStore } from '../../src/store/sessions.js';
import { createTestStore } from '../kit/pg.js';
import { cellsContaining } from '../kit/store-scan.js';

const MIN = 60_000;
let n = 0;
const address = () => `owner-${process.pid}-${n++}@example.com`;

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`accounts store on ${dialect}`, () => {
    let db: Db;
    let db2: Db;
    let cleanup: () => Promise<void>;
    let users: UserStore;
    let tokens: OneTimeTokenStore;
    let accounts: AccountStore;
    before(async () => {
      const store = await createTestStore(dialect);
      cleanup = store.cleanup;
      db = await openDb(store.config);
      await migrateToLatest(db);
      db2 = await openDb(store.config);
      users = new UserStore(db);
      tokens = new OneTimeTokenStore(db);
      accounts = new AccountStore(db, tokens);
    });
    after(async () => {
      await db?.destroy();
      await db2?.destroy();
      await cleanup?.();
    });

    const newUser = async () => (await users.create(address(), 'scrypt$hash', null))!;

    test('a token is stored only as its hash, works once, and not after its expiry', async () => {
      const u = await newUser();
      const now = Date.now();
      const t = await tokens.issue(u.id, 'verify_email', u.email, 30 * MIN, now);
      assert.equal(await db.selectFrom('one_time_tokens').select('hash').where('hash', '=', t).executeTakeFirst(), undefined, 'the token text is not stored');
      assert.ok(await db.selectFrom('one_time_tokens').select('hash').where('hash', '=', tokenHash(t)).executeTakeFirst(), 'its hash is');
      const consume = (token: string, at: number) => db.transaction().execute((tx) => tokens.consume(tx, token, ['verify_email'], at));
      assert.equal(await consume(t, now + 30 * MIN), null, 'refused at its expiry');
      assert.deepEqual(await consume(t, now + 30 * MIN - 1), { userId: u.id, kind: 'verify_email', email: u.email });
      assert.equal(await consume(t, now + 1), null, 'refused once used');
    });

    test('a token is refused for another flow, and an older one once a newer is issued', async () => {
      const u = await newUser();
      const reset = await tokens.issue(u.id, 'reset_password', u.email, MIN);
      assert.equal(await db.transaction().execute((tx) => tokens.consume(tx, reset, ['verify_email', 'change_email'])), null);
      const newer = await tokens.issue(u.id, 'reset_password', u.email, MIN);
      assert.equal(await db.transaction().execute((tx) => tokens.consume(tx, reset, ['reset_password'])), null, 'superseded');
      assert.ok(await db.transaction().execute((tx) => tokens.consume(tx, newer, ['reset_password'])));
    });

    test('of two clients racing with one token, exactly one consumes it', async () => {
      const u = await newUser();
      const tokens2 = new OneTimeTokenStore(db2);
      for (let i = 0; i < 5; i++) {
        const t = await tokens.issue(u.id, 'reset_password', u.email, MIN);
        const results = await Promise.all([
          db.transaction().execute((tx) => tokens.consume(tx, t, ['reset_password'])),
          db2.transaction().execute((tx) => tokens2.consume(tx, t, ['reset_password'])),
        ]);
        assert.equal(results.filter((r) => r !== null).length, 1, `round ${i}: one winner`);
      }
    });

    test('verifyEmail verifies the address the token was mailed to, once; not after the address changed', async () => {
      const u = await newUser();
      const t = await tokens.issue(u.id, 'verify_email', u.email, MIN);
      const verified = await accounts.verifyEmail(t);
      assert.ok(typeof verified === 'object');
      assert.equal(verified.email_verified, 1);
      assert.equal(await accounts.verifyEmail(t), 'invalid_token');
      const v = await newUser();
      const stale = await tokens.issue(v.id, 'verify_email', 'old-address@example.com', MIN);
      assert.equal(await accounts.verifyEmail(stale), 'invalid_token');
      assert.equal((await users.byId(v.id))!.email_verified, 0);
    });

    test('a change of email takes effect when its token is consumed; a taken address refuses it and leaves the token unused', async () => {
      const u = await newUser();
      const target = address();
      const t = (await accounts.requestEmailChange(u.id, target, MIN))!;
      assert.equal((await users.byId(u.id))!.pending_email, target);
      assert.equal((await users.byId(u.id))!.email, u.email, 'the old address stays until verified');
      const changed = await accounts.verifyEmail(t);
      assert.ok(typeof changed === 'object');
      assert.deepEqual([changed.email, changed.email_verified, changed.pending_email], [target, 1, null]);

      const w = await newUser();
      const contested = address();
      const t2 = (await accounts.requestEmailChange(w.id, contested, MIN))!;
      await users.create(contested, 'scrypt$other', null);
      assert.equal(await accounts.verifyEmail(t2), 'email_taken');
      const row = await db.selectFrom('one_time_tokens').select('used_at').where('hash', '=', tokenHash(t2)).executeTakeFirstOrThrow();
      assert.equal(row.used_at, null, 'the refused change rolled back the token use');
      assert.equal((await users.byId(w.id))!.email, w.email);
    });

    test('resetPassword sets the hash, verifies the address, kills every reset token, and works once', async () => {
      const u = await newUser();
      const t = await tokens.issue(u.id, 'reset_password', u.email, MIN);
      assert.equal(await accounts.resetPassword(t, 'scrypt$new'), u.id);
      const row = (await users.byId(u.id))!;
      assert.deepEqual([row.password_hash, row.email_verified], ['scrypt$new', 1]);
      assert.equal(await accounts.resetPassword(t, 'scrypt$again'), 'invalid_token');
      assert.equal((await users.byId(u.id))!.password_hash, 'scrypt$new');
      const expired = await tokens.issue(u.id, 'reset_password', u.email, MIN, Date.now() - 2 * MIN);
      assert.equal(await accounts.resetPassword(expired, 'scrypt$late'), 'invalid_token');
    });

    test('deleteUser leaves no cell naming the user or their email, and keeps everyone else\'s rows', async () => {
      const gone = await newUser();
      const stays = await newUser();
      const devices = new DeviceStore(db);
      const events = new EventWriter(db);
      const log = new MessageLog(db);
      const outbox = new OutboxStore(db);
      for (const u of [gone, stays]) {
        const device = await devices.upsert(u.id, 'android', `fcm-${u.id}`, null);
        await events.write([{ user_id: u.id, type: 'app.open', ts: Date.now(), props: '{}', received_at: Date.now() }]);
        const [offset] = await log.append([{ topic: `user:${u.id}`, data: '{"title":"hi"}', from: null, ts: Date.now() }]);
        await outbox.create({ id: `n-${u.id}`, target: { userId: u.id }, payload: { title: 't', body: 'b', data: {} }, live: 0, devices: [device], offset: offset! });
        await log.append([{ topic: 'room:shared', data: `{"said":"${u.id === gone.id ? 'bye' : 'hi'}"}`, from: u.id, ts: Date.now() }]);
        await new ReceiptStore(db).record([{ userId: u.id, topic: `user:${u.id}`, offset: offset! }]);
        await new MemberStore(db).add('team:a', u.id);
        await db.transaction().execute((tx) => new IdempotencyStore(db).begin(tx, `pub:${u.id}`, 'k1', 'h'));
        await new SessionStore(db).create(u.id, 'phone', `refresh-${u.id}`, Date.now(), MIN);
        await tokens.issue(u.id, 'verify_email', u.email, MIN);
      }
      await events.drain();
      // A push row of a topic notification to the gone user's device.
      const [gd] = await devices.list(gone.id);
      await outbox.create({ id: 'n-topic', target: { topic: 'room:shared' }, payload: { title: 't', body: 'b', data: {} }, live: 0, devices: [gd!] });
      assert.notDeepEqual(await cellsContaining(db, gone.id), [], 'the seeding names the user');

      assert.equal(await accounts.deleteUser(gone.id), true);
      assert.deepEqual(await cellsContaining(db, gone.id), []);
      assert.deepEqual(await cellsContaining(db, gone.email), []);
      const pushRows = await db.selectFrom('push_outbox').select('device_id').execute();
      assert.ok(!pushRows.some((r) => r.device_id === gd!.id), "no push row for the user's device");
      const shared = await db.selectFrom('messages').select(['data', 'from_user']).where('topic', '=', 'room:shared').orderBy('seq').execute();
      assert.deepEqual(shared.map((m) => [JSON.parse(m.data).said, m.from_user]), [['bye', null], ['hi', stays.id]], 'shared history stays, de-attributed');

      const kept = await cellsContaining(db, stays.id);
      for (const table of ['users', 'devices', 'events', 'messages', 'notifications', 'receipts', 'topic_members', 'idempotency_keys', 'sessions', 'one_time_tokens']) {
        assert.ok(kept.some((c) => c.startsWith(`${table}.`)), `the other user keeps their ${table} rows`);
      }
      assert.equal(await accounts.deleteUser(gone.id), false, 'a second deletion finds no user');
    });
  });
}
