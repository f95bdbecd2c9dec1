import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { openDb, type Db } from '../../src/store/db.js';
import { DeviceStore, type DeviceRow } from '../../src/store/devices.js';
import { IdempotencyStore, KEY_TTL_MS } from '../../src/store/idempotency.js';
import { LogWriter } from '../../src/store/log-writer.js';
import { MessageLog, type LogItem } from '../../src/store/message-log.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { ReceiptStore } from '../../src/store/receipts.js';
import { UserStore } from '../../src/store/users.js';
import { createTestStore } from '../kit/pg.js';

type StoreConfig = { databaseUrl: string | undefined; dataDir: string };

const HOUR = 3_600_000;
const item = (topic: string, data = '{"n":1}', ts = Date.now()): LogItem => ({ topic, data, from: null, ts });

/**
 * Append `rounds` batches (one item per topic, interleaved) from a worker thread with its own
 * store client: on SQLite its own connection and event loop, as another process would have.
 */
function appendFromWorker(
  config: StoreConfig,
  topics: string[],
  rounds: number,
  tag: string,
  barrier: Int32Array,
): Promise<Record<string, number[]>> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    (async () => {
      const { openDb } = await import(workerData.dbUrl);
      const { MessageLog } = await import(workerData.logUrl);
      const db = await openDb(workerData.config);
      const log = new MessageLog(db);
      await log.epoch(); // connected
      // Start together: both workers ready before either appends.
      const b = workerData.barrier;
      Atomics.add(b, 0, 1);
      Atomics.notify(b, 0);
      while (Atomics.load(b, 0) < 2) Atomics.wait(b, 0, Atomics.load(b, 0), 50);
      const out = {};
      for (let r = 0; r < workerData.rounds; r++) {
        const items = workerData.topics.map((topic) => ({ topic, data: JSON.stringify({ w: workerData.tag, r }), from: null, ts: Date.now() }));
        const offsets = await log.append(items);
        workerData.topics.forEach((t, i) => (out[t] ??= []).push(offsets[i]));
        await new Promise((r) => setTimeout(r, 1)); // as a server would, between commits
      }
      await db.destroy();
      parentPort.postMessage(out);
    })();
  `;
  const w = new Worker(code, {
    eval: true,
    workerData: {
      config,
      topics,
      rounds,
      tag,
      barrier,
      dbUrl: new URL('../../src/store/db.js', import.meta.url).href,
      logUrl: new URL('../../src/store/message-log.js', import.meta.url).href,
    },
  });
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
  });
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`delivery store on ${dialect}`, () => {
    let config: StoreConfig;
    let db: Db;
    let db2: Db;
    let cleanup: () => Promise<void>;
    let n = 0;
    /** A fresh topic name per use, so tests share the store without sharing topics. */
    const topic = (ns = 'room') => `${ns}:${dialect}-${++n}`;
    const newUser = async () => (await new UserStore(db).create(`u${++n}@example.com`, 'h', null))!;

    before(async () => {
      ({ config, cleanup } = await createTestStore(dialect, 'onebox-delivery-'));
      db = await openDb(config);
      await migrateToLatest(db);
      db2 = await openDb(config);
    });
    after(async () => {
      await db?.destroy();
      await db2?.destroy();
      await cleanup?.();
    });

    test('the epoch is created with the store and survives a reopen', async () => {
      const epoch = await new MessageLog(db).epoch();
      assert.match(epoch, /^[0-9a-f]{12}$/);
      const again = await openDb(config);
      try {
        await migrateToLatest(again);
        assert.equal(await new MessageLog(again).epoch(), epoch);
      } finally {
        await again.destroy();
      }
    });

    test('offsets are gapless and in item order, and continue per topic', async () => {
      const log = new MessageLog(db);
      const [a, b] = [topic(), topic()];
      assert.equal(await log.head(a), 0);
      assert.deepEqual(await log.append([item(a), item(b), item(a), item(a), item(b)]), [1, 1, 2, 3, 2]);
      assert.deepEqual(await log.append([item(b), item(a)]), [3, 4]);
      assert.equal(await log.head(a), 4);
      assert.equal(await log.head(b), 3);
    });

    test('concurrent appends from two clients never duplicate or skip an offset', async () => {
      const topics = [topic(), topic(), topic()];
      const rounds = 40;
      const barrier = new Int32Array(new SharedArrayBuffer(4));
      const [x, y] = await Promise.all([
        appendFromWorker(config, topics, rounds, 'x', barrier),
        appendFromWorker(config, topics, rounds, 'y', barrier),
      ]);
      const breaks = (a: number[]) => a.filter((o, i) => i > 0 && o !== a[i - 1]! + 1).length;
      assert.ok(breaks(x[topics[0]!]!) > 0, 'the two clients interleaved (else this proves nothing)');
      const log = new MessageLog(db);
      for (const t of topics) {
        for (const mine of [x[t]!, y[t]!]) {
          assert.ok(mine.every((o, i) => i === 0 || o > mine[i - 1]!), `${t}: one client's offsets increase`);
        }
        const all = [...x[t]!, ...y[t]!].sort((p, q) => p - q);
        assert.deepEqual(all, Array.from({ length: 2 * rounds }, (_, i) => i + 1), `${t}: 1..${2 * rounds}, each once`);
        const read = await log.read(t, 0, 1000, 1 << 20);
        assert.deepEqual(
          read.entries.map((e) => e.offset),
          all,
        );
        assert.equal(read.head, 2 * rounds);
      }
    });

    test('LogWriter groups concurrent writes into few transactions, offsets in write order', async () => {
      const writer = new LogWriter(new MessageLog(db), { maxBatch: 50 });
      const t = topic();
      const offsets = await Promise.all(Array.from({ length: 200 }, () => writer.write(item(t))));
      assert.deepEqual(
        offsets,
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.equal(writer.flushes, 4, 'maxBatch 50: four transactions for 200 writes');
      const one = writer.write(item(t));
      await writer.drain();
      assert.equal(await one, 201);
      assert.equal(writer.queued, 0);
    });

    test('LogWriter: a bad item fails alone; the rest of its batch commits in order', async () => {
      const log = new MessageLog(db);
      const writer = new LogWriter(log);
      const t = topic();
      // Empty data violates the messages_data CHECK: the batch's transaction fails.
      const results = await Promise.allSettled([writer.write(item(t)), writer.write(item(t, '')), writer.write(item(t)), writer.write(item(t))]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
      );
      assert.deepEqual(
        results.filter((r) => r.status === 'fulfilled').map((r) => r.value),
        [1, 2, 3],
      );
      assert.equal(writer.failures, 1);
      assert.equal(await log.head(t), 3, 'the failed item took no offset');
    });

    test('read is bounded by count and bytes, says more, and at least one entry', async () => {
      const log = new MessageLog(db);
      const t = topic();
      const data = JSON.stringify({ pad: 'x'.repeat(90) }); // 100 bytes
      await log.append(Array.from({ length: 10 }, () => ({ topic: t, data, from: 'u1', ts: 5 })));
      const byCount = await log.read(t, 0, 3, 1 << 20);
      assert.deepEqual(
        byCount.entries.map((e) => e.offset),
        [1, 2, 3],
      );
      assert.deepEqual(byCount.entries[0], { offset: 1, ts: 5, data, from: 'u1' });
      assert.equal(byCount.more, true);
      assert.equal(byCount.head, 10);
      assert.equal(byCount.oldest, 1);
      const byBytes = await log.read(t, 4, 100, 250);
      assert.deepEqual(
        byBytes.entries.map((e) => e.offset),
        [5, 6],
      );
      assert.equal(byBytes.more, true);
      assert.equal((await log.read(t, 0, 100, 10)).entries.length, 1, 'one entry even past maxBytes');
      const tail = await log.read(t, 7, 100, 1 << 20);
      assert.deepEqual(
        tail.entries.map((e) => e.offset),
        [8, 9, 10],
      );
      assert.equal(tail.more, false);
      const end = await log.read(t, 10, 100, 1 << 20);
      assert.deepEqual(end, { entries: [], head: 10, oldest: 1, more: false });
      assert.deepEqual(await log.read(topic(), 0, 100, 1 << 20), { entries: [], head: 0, oldest: 1, more: false });
    });

    test('trim by size and by age keeps the head; offsets continue; oldest shows the gap', async () => {
      const log = new MessageLog(db);
      const now = Date.now();
      const [bySize, byAge, untouched] = [topic('sized'), topic('aged'), topic('kept')];
      await log.append(Array.from({ length: 10 }, () => item(bySize, '{}', now)));
      await log.append(Array.from({ length: 10 }, (_, i) => item(byAge, '{}', i < 6 ? now - 2 * HOUR : now)));
      await log.append(Array.from({ length: 3 }, () => item(untouched, '{}', now - 2 * HOUR)));
      // Other tests' topics share the store: kept whole.
      const keep = { size: Infinity, ttlMs: Infinity };
      const policy = (t: string) => (t === bySize ? { size: 4, ttlMs: 10 * HOUR } : t === byAge ? { size: 100, ttlMs: HOUR } : t === untouched ? { size: 100, ttlMs: 10 * HOUR } : keep);
      let deleted = 0;
      // Two deletes per call: the work spreads over calls and resumes where it stopped.
      for (let i = 0; i < 50; i++) deleted += await log.trim(policy, now, 2);
      assert.equal(deleted, 6 + 6);
      const sized = await log.read(bySize, 2, 100, 1 << 20);
      assert.equal(sized.oldest, 7);
      assert.ok(2 < sized.oldest - 1, 'a reader at 2 sees the gap');
      assert.deepEqual(
        sized.entries.map((e) => e.offset),
        [7, 8, 9, 10],
      );
      assert.equal((await log.read(byAge, 0, 100, 1 << 20)).oldest, 7);
      assert.equal((await log.read(untouched, 0, 100, 1 << 20)).entries.length, 3);

      const everything = (t: string) => (t === bySize ? { size: 0, ttlMs: 10 * HOUR } : keep);
      for (let i = 0; i < 50; i++) await log.trim(everything, now, 1000);
      const empty = await log.read(bySize, 0, 100, 1 << 20);
      assert.deepEqual(empty, { entries: [], head: 10, oldest: 11, more: false });
      assert.deepEqual(await log.append([item(bySize)]), [11], 'offsets continue after a full trim');
    });

    describe('receipts', () => {
      let user: { id: string };
      let devs: DeviceRow[];
      let log: MessageLog;
      let outbox: OutboxStore;
      const notify = async (userId: string, force: boolean, devices: DeviceRow[], dueAt: number) =>
        db.transaction().execute(async (tx) => {
          const id = `n${++n}`;
          const [offset] = await log.appendIn(tx, [item(`user:${userId}`)]);
          await outbox.create({ id, target: { userId }, payload: { title: 't', body: '', data: {} }, live: 1, devices, offset, force, dueAt }, tx);
          return { id, offset: offset! };
        });

      before(async () => {
        log = new MessageLog(db);
        outbox = new OutboxStore(db);
        user = await newUser();
        const devices = new DeviceStore(db);
        devs = [await devices.upsert(user.id, 'ios', `r-${n}-a`, null), await devices.upsert(user.id, 'android', `r-${n}-b`, null)];
      });

      test('keep the max, clamp to the head, mark notifications received and cancel their unforced pushes', async () => {
        const receipts = new ReceiptStore(db);
        const due = Date.now() + 5000;
        const n1 = await notify(user.id, false, devs, due);
        const n2 = await notify(user.id, true, devs, due);
        const n3 = await notify(user.id, false, devs, due);
        assert.deepEqual([n1.offset, n2.offset, n3.offset], [1, 2, 3]);
        const channel = `user:${user.id}`;

        await receipts.record([
          { userId: user.id, topic: channel, offset: 1 },
          { userId: user.id, topic: channel, offset: 2 },
        ]);
        assert.equal(await receipts.get(user.id, channel), 2);
        assert.equal((await outbox.status(n1.id))?.state, 'received');
        assert.deepEqual(
          (await outbox.forNotification(n1.id)).map((r) => r.status),
          ['received', 'received'],
        );
        const forced = await outbox.status(n2.id);
        assert.equal(forced?.state, 'received');
        assert.deepEqual(
          forced?.rows.map((r) => r.status),
          ['pending', 'pending'],
          'a forced push is not cancelled',
        );
        assert.equal((await outbox.status(n3.id))?.state, 'pending');

        await receipts.record([{ userId: user.id, topic: channel, offset: 1 }]);
        assert.equal(await receipts.get(user.id, channel), 2, 'never moves back');

        await receipts.record([{ userId: user.id, topic: channel, offset: 1e9 }]);
        assert.equal(await receipts.get(user.id, channel), 3, 'clamped to the head');
        assert.equal((await outbox.status(n3.id))?.state, 'received');

        // Only n2's forced rows are left to push once due.
        const mine = new Set([n1.id, n2.id, n3.id]);
        const claimed = (await outbox.claim(due + 1, 50, 1000)).filter((c) => mine.has(c.notificationId));
        assert.deepEqual(
          claimed.map((c) => [c.notificationId, c.topic, c.offset]),
          [
            [n2.id, channel, 2],
            [n2.id, channel, 2],
          ],
        );
      });

      test("another user's receipt on a channel cancels nothing; a deleted user's receipt is dropped", async () => {
        const receipts = new ReceiptStore(db);
        const owner = await newUser();
        const other = await newUser();
        const gone = await newUser();
        const dev = await new DeviceStore(db).upsert(owner.id, 'ios', `o-${n}`, null);
        const note = await notify(owner.id, false, [dev], Date.now() + 5000);
        const room = topic();
        await log.append([item(room), item(room)]);
        await db.deleteFrom('users').where('id', '=', gone.id).execute();
        await receipts.record([
          { userId: other.id, topic: `user:${owner.id}`, offset: note.offset },
          { userId: gone.id, topic: room, offset: 2 },
          { userId: other.id, topic: room, offset: 2 },
          { userId: other.id, topic: topic(), offset: 5 },
        ]);
        assert.equal((await outbox.status(note.id))?.state, 'pending');
        assert.equal(await receipts.get(other.id, room), 2);
        assert.equal(await receipts.get(gone.id, room), 0);
      });
    });

    test('idempotency: 10 concurrent transactions with one key append once and see one response', async () => {
      const keys = new IdempotencyStore(db);
      const log = new MessageLog(db);
      const t = topic();
      // On SQLite one client (in-process connections would wait on each other's lock
      // synchronously); on PostgreSQL both, as two processes would.
      const clients = dialect === 'postgres' ? [db, db2] : [db];
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          clients[i % clients.length]!.transaction().execute(async (tx) => {
            const b = await keys.begin(tx, 'pub:u1', 'k1', 'h1');
            if (b.state !== 'new') return b;
            const [offset] = await log.appendIn(tx, [item(t)]);
            const response = JSON.stringify({ offset });
            await keys.complete(tx, 'pub:u1', 'k1', response);
            return { state: 'first' as const, response };
          }),
        ),
      );
      assert.equal(results.filter((r) => r.state === 'first').length, 1);
      assert.deepEqual(new Set(results.map((r) => (r.state === 'pending' ? null : r.response))), new Set(['{"offset":1}']));
      assert.ok(results.every((r) => r.state === 'first' || (r.state === 'done' && r.hash === 'h1')));
      assert.equal(await log.head(t), 1, 'one message appended');
    });

    test('idempotency: a key older than 24 h is taken over; purge deletes old keys', async () => {
      const keys = new IdempotencyStore(db);
      const t0 = Date.now() - KEY_TTL_MS - 1000;
      await db.transaction().execute(async (tx) => {
        assert.deepEqual(await keys.begin(tx, 's', 'old', 'h1', t0), { state: 'new' });
        await keys.complete(tx, 's', 'old', 'r1');
      });
      await db.transaction().execute(async (tx) => {
        assert.deepEqual(await keys.begin(tx, 's', 'old', 'h2', t0 + 1000), { state: 'done', hash: 'h1', response: 'r1' });
      });
      await db.transaction().execute(async (tx) => {
        assert.deepEqual(await keys.begin(tx, 's', 'old', 'h2'), { state: 'new' }, 'expired: taken over');
        assert.deepEqual(await keys.begin(tx, 's', 'fresh', 'h3'), { state: 'new' });
      });
      assert.ok((await keys.purge(Date.now() + 1)) >= 2);
      assert.equal(await keys.purge(Date.now() + 1), 0);
      await db.transaction().execute(async (tx) => {
        assert.deepEqual(await keys.begin(tx, 's', 'fresh', 'h4'), { state: 'new' }, 'purged');
      });
    });

    test('outbox status: pending, pushed, push_failed, received; unknown is undefined', async () => {
      const outbox = new OutboxStore(db);
      const u = await newUser();
      const devices = new DeviceStore(db);
      const devs = [await devices.upsert(u.id, 'ios', `s-${n}-a`, null), await devices.upsert(u.id, 'web', `s-${n}-b`, null)];
      const payload = { title: 't', body: '', data: {} };
      await outbox.create({ id: 'st-pushed', target: { userId: u.id }, payload: payload, live: 0, devices: devs });
      await outbox.create({ id: 'st-failed', target: { userId: u.id }, payload: payload, live: 0, devices: devs });
      await outbox.create({ id: 'st-topic', target: { topic: 'room:st' }, payload: payload, live: 3, devices: [] });
      const pending = await outbox.status('st-pushed');
      assert.equal(pending?.state, 'pending');
      assert.equal(pending?.topic, `user:${u.id}`, "a user's notification is filed under user:<id>");
      assert.equal((await outbox.status('st-topic'))?.state, 'pending');
      const [p1] = await outbox.forNotification('st-pushed');
      await outbox.finish(p1!.id, 'sent', null);
      assert.equal((await outbox.status('st-pushed'))?.state, 'pushed');
      const [f1, f2] = await outbox.forNotification('st-failed');
      await outbox.finish(f1!.id, 'failed', 'x');
      assert.equal((await outbox.status('st-failed'))?.state, 'pending', 'one row still to go');
      await outbox.finish(f2!.id, 'dead', 'gone');
      assert.equal((await outbox.status('st-failed'))?.state, 'push_failed');
      await db.updateTable('notifications').set({ received_at: 1234 }).where('id', '=', 'st-pushed').execute();
      assert.deepEqual(
        [(await outbox.status('st-pushed'))?.state, (await outbox.status('st-pushed'))?.receivedAt],
        ['received', 1234],
      );
      assert.equal(await outbox.status('nope'), undefined);
    });
  });
}
