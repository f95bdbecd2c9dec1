import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { openDb, type Db } from '../../src/store/db.js';
import { DeviceStore } from '../../src/store/devices.js';
import { countEvents, EventWriter } from '../../src/store/events.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { UserStore } from '../../src/store/users.js';
import { MemberStore } from '../../src/store/members.js';
import { isForeignKeyViolation } from '../../src/store/db-errors.js';
import { createTestStore } from '../kit/pg.js';

const DAY = 86_400_000;

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`store on ${dialect}`, () => {
    let db: Db;
    let db2: Db;
    let cleanup: () => Promise<void>;
    before(async () => {
      const store = await createTestStore(dialect);
      const config = store.config;
      cleanup = store.cleanup;
      db = await openDb(config);
      await migrateToLatest(db);
      await migrateToLatest(db); // idempotent
      db2 = await openDb(config); // a second client, as another worker would have
    });
    after(async () => {
      await db.destroy();
      await db2.destroy();
      await cleanup();
    });

    test('users: unique email, lookups, profile update', async () => {
      const users = new UserStore(db);
      const a = await users.create('a@example.com', 'hash', 'A');
      assert.ok(a);
      assert.equal(await users.create('a@example.com', 'hash2', null), null);
      assert.equal((await users.byEmail('a@example.com'))?.id, a.id);
      const u = await users.updateProfile(a.id, { locale: 'de' });
      assert.equal(u?.locale, 'de');
      assert.equal(typeof u?.created_at, 'number');
    });

    test('devices: upsert per user and token, delete own only', async () => {
      const users = new UserStore(db);
      const a = (await users.create('d1@example.com', 'h', null))!;
      const b = (await users.create('d2@example.com', 'h', null))!;
      const devices = new DeviceStore(db);
      const d1 = await devices.upsert(a.id, 'android', 'tok-1', null);
      const d2 = await devices.upsert(a.id, 'android', 'tok-1', null);
      assert.equal(d1.id, d2.id);
      await devices.upsert(b.id, 'android', 'tok-1', null);
      assert.equal((await devices.list(a.id)).length, 1);
      assert.equal(await devices.remove(b.id, d1.id), false);
      assert.equal(await devices.remove(a.id, d1.id), true);
    });

    test('events: grouped writes, 7 and 30 day counts', async () => {
      const user = (await new UserStore(db).create('e@example.com', 'h', null))!;
      const writer = new EventWriter(db);
      const now = Date.now();
      const row = (type: string, ago: number) => ({ user_id: user.id, type, ts: now - ago, props: '{}', received_at: now });
      await Promise.all([
        writer.write([row('open', 0), row('open', 2 * DAY)]),
        writer.write([row('open', 10 * DAY), row('buy', 20 * DAY)]),
        writer.write([row('open', 40 * DAY)]),
      ]);
      assert.ok(writer.flushes <= 2, `${writer.flushes} transactions for three concurrent batches`);
      assert.deepEqual(await countEvents(db, user.id, now), { open: { last7d: 2, last30d: 3 }, buy: { last7d: 0, last30d: 1 } });
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(countEvents(db, user.id, now, ac.signal));
    });

    test('outbox: concurrent claimers never share a row; an expired lease is claimed again', async () => {
      const user = (await new UserStore(db).create('o@example.com', 'h', null))!;
      const devices = new DeviceStore(db);
      const devs = [];
      for (let i = 0; i < 30; i++) devs.push(await devices.upsert(user.id, 'ios', `t${i}`, null));
      const outbox = new OutboxStore(db);
      await outbox.create({ id: 'n1', target: { userId: user.id }, payload: { title: 't', body: '', data: {} }, live: 0, devices: devs });
      const now = Date.now();
      const [a, b] = await Promise.all([outbox.claim(now, 20, 1000), new OutboxStore(db2).claim(now, 20, 1000)]);
      const ids = [...a, ...b].map((r) => r.id);
      assert.equal(ids.length, 30);
      assert.equal(new Set(ids).size, 30);
      assert.equal((await outbox.claim(now, 50, 1000)).length, 0);
      await outbox.finish(a[0]!.id, 'sent', null);
      await outbox.retry(a[1]!.id, 1, now + 5000, 'later');
      const again = await outbox.claim(now + 1001, 50, 1000);
      assert.equal(again.length, 28);
      assert.ok(!again.some((r) => r.id === a[0]!.id || r.id === a[1]!.id));
      assert.equal(again[0]!.payload.title, 't');
      assert.deepEqual(await outbox.counts(), { pending: 29, sent: 1 });
    });

    test('members: add once, pages by user id, remove; a missing user trips the foreign key; deleting the user removes the row', async () => {
      const users = new UserStore(db);
      const members = new MemberStore(db);
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await users.create(`m${i}@example.com`, 'h', null))!.id);
      ids.sort();
      for (const id of ids) assert.equal(await members.add('room:m', id), true);
      assert.equal(await members.add('room:m', ids[0]!), false, 'already a member');
      assert.equal(await members.isMember('room:m', ids[0]!), true);
      assert.equal(await members.isMember('room:other', ids[0]!), false);
      const first = await members.list('room:m', 2, undefined);
      const second = await members.list('room:m', 2, first.next!);
      const last = await members.list('room:m', 2, second.next!);
      assert.deepEqual([...first.members, ...second.members, ...last.members].map((m) => m.userId), ids);
      assert.equal(last.next, null);
      assert.equal((await members.list('room:m', 5, undefined)).next, null, 'an exact page says there is no more');
      assert.equal(await members.remove('room:m', ids[1]!), true);
      assert.equal(await members.remove('room:m', ids[1]!), false);
      await assert.rejects(members.add('room:m', 'no-such-user'), (err) => isForeignKeyViolation(err));
      await db.deleteFrom('users').where('id', '=', ids[0]!).execute();
      assert.equal(await members.isMember('room:m', ids[0]!), false);
    });
  });
}

describe('SQLite on a full disk', () => {
  test('a failed transaction reports the cause, not "no transaction is active"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onebox-full-'));
    const db = await openDb({ databaseUrl: undefined, dataDir: dir });
    try {
      await migrateToLatest(db);
      // max_page_count makes SQLite answer SQLITE_FULL as a full disk would; SQLite then
      // rolls the transaction back by itself.
      const pages = Number((await sql<{ page_count: number }>`PRAGMA page_count`.execute(db)).rows[0]!.page_count);
      await sql`PRAGMA max_page_count = ${sql.raw(String(pages + 2))}`.execute(db);
      const user = (await new UserStore(db).create('full@example.com', 'hash', null))!;
      const big = JSON.stringify({ pad: 'x'.repeat(3000) });
      const rows = Array.from({ length: 200 }, (_, i) => ({ user_id: user.id, type: 't', ts: i, props: big, received_at: i }));
      await assert.rejects(
        db.transaction().execute(async (tx) => {
          for (const r of rows) await tx.insertInto('events').values(r).execute();
        }),
        (err: Error) => /full/i.test(err.message) && !/no transaction/i.test(err.message),
      );
    } finally {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite with another writer holding the lock', () => {
  test('a write waits for the lock asynchronously: the event loop keeps turning, then the write lands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onebox-busy-'));
    const db = await openDb({ databaseUrl: undefined, dataDir: dir });
    const { default: Database } = await import('better-sqlite3');
    const other = new Database(join(dir, 'onebox.sqlite'));
    try {
      await migrateToLatest(db);
      other.exec('BEGIN IMMEDIATE');
      let ticks = 0;
      let longestGapMs = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        longestGapMs = Math.max(longestGapMs, now - last);
        last = now;
        ticks++;
      }, 5);
      setTimeout(() => other.exec('COMMIT'), 300);
      const user = await new UserStore(db).create('busy@example.com', 'hash', null);
      clearInterval(timer);
      assert.ok(user, 'the write landed once the lock was free');
      assert.ok(ticks >= 20, `the loop turned while the write waited (${ticks} ticks)`);
      assert.ok(longestGapMs < 100, `no long synchronous wait (longest gap ${longestGapMs.toFixed(0)} ms)`);
    } finally {
      other.close();
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
