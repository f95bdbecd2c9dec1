import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../src/observability/logger.js';
import type { PushProvider, PushResult } from '../../src/push/types.js';
import { PushWorker, type PushWorkerOptions } from '../../src/push/worker.js';
import { openDb, type Db } from '../../src/store/db.js';
import { DeviceStore, type DeviceRow } from '../../src/store/devices.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { UserStore } from '../../src/store/users.js';
import { eventually } from '../kit/eventually.js';

/**
 * A provider scripted by token prefix: `ok` answers after a few ms, `hang` never answers
 * until its signal aborts, `deaf` never answers and ignores the signal.
 */
class ScriptedProvider implements PushProvider {
  started: string[] = [];
  sent: string[] = [];
  aborted: string[] = [];
  inflight = 0;
  maxInflight = 0;

  send(device: DeviceRow, _p: unknown, signal: AbortSignal): Promise<PushResult> {
    const token = device.token;
    this.started.push(token);
    this.maxInflight = Math.max(this.maxInflight, ++this.inflight);
    if (token.startsWith('deaf')) return new Promise(() => undefined);
    if (token.startsWith('hang')) {
      return new Promise((resolve) =>
        signal.addEventListener('abort', () => {
          this.inflight--;
          this.aborted.push(token);
          resolve({ kind: 'retry', reason: 'aborted' });
        }),
      );
    }
    return sleep(2 + Math.random() * 10).then(() => {
      this.inflight--;
      this.sent.push(token);
      return { kind: 'sent' } as const;
    });
  }
}

describe('push worker', () => {
  let dir: string;
  let db: Db;
  let users: UserStore;
  let devices: DeviceStore;
  let outbox: OutboxStore;
  const log = createLogger('silent');
  const options = (o: Partial<PushWorkerOptions>): PushWorkerOptions => ({
    pollMs: 60_000,
    leaseMs: 60_000,
    maxAttempts: 5,
    backoffBaseMs: 10,
    batch: 50,
    sendTimeoutMs: 10_000,
    concurrency: 4,
    ...o,
  });

  /** One user with one android device per token, and one notification queued to them all. */
  const queue = async (tokens: string[]): Promise<string> => {
    const user = (await users.create(`w-${randomUUID()}@example.com`, 'h', null))!;
    const rows = [];
    for (const t of tokens) rows.push(await devices.upsert(user.id, 'android', t, null));
    const id = randomUUID();
    await outbox.create({ id: id, target: { userId: user.id }, payload: { title: 't', body: '', data: {} }, live: 0, devices: rows });
    return id;
  };

  // A database per test: rows a test leaves pending (retries) must not reach the next one.
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'onebox-worker-'));
    db = await openDb({ databaseUrl: undefined, dataDir: dir });
    await migrateToLatest(db);
    users = new UserStore(db);
    devices = new DeviceStore(db);
    outbox = new OutboxStore(db);
  });
  afterEach(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a send that never answers holds up no other row; at its deadline it is aborted and retried with backoff', async (t) => {
    const provider = new ScriptedProvider();
    const worker = new PushWorker(outbox, devices, { android: provider }, options({ sendTimeoutMs: 2000 }), log);
    t.after(() => worker.stop());
    const silent = await queue(['hang-1']);
    worker.start();
    await eventually(() => provider.started.includes('hang-1'), { what: 'the silent send to start' });
    // Queued after the silent send began: the old pass waited for its whole batch here.
    await queue(['ok-1', 'ok-2', 'ok-3', 'ok-4', 'ok-5', 'ok-6']);
    worker.kick();
    await eventually(() => provider.sent.length === 6, { what: 'the six other sends' });
    assert.deepEqual(provider.aborted, [], 'the other rows went out while the silent send was still pending');
    await eventually(() => provider.aborted.includes('hang-1'), { what: 'the deadline to abort the silent send' });
    const [row] = await eventually(
      async () => {
        const rows = await outbox.forNotification(silent);
        return rows[0]?.attempts === 1 ? rows : null;
      },
      { what: 'the retry to be recorded' },
    );
    assert.equal(row!.status, 'pending');
    assert.match(String(row!.last_error), /timed out after 2000 ms/);
    assert.ok(Number(row!.next_at) >= Number(row!.updated_at) - 1, 'scheduled by the backoff, not claimed');
    assert.equal(worker.stats.retried, 1);
    assert.equal(worker.stats.sent, 6);
  });

  test('a provider that ignores the abort still frees its slot at the deadline', async (t) => {
    const provider = new ScriptedProvider();
    const worker = new PushWorker(outbox, devices, { android: provider }, options({ sendTimeoutMs: 200, concurrency: 1 }), log);
    t.after(() => worker.stop());
    const deaf = await queue(['deaf-1']);
    worker.start();
    await eventually(() => provider.started.includes('deaf-1'), { what: 'the deaf send to start' });
    await queue(['ok-deaf-next']);
    worker.kick();
    await eventually(() => provider.sent.includes('ok-deaf-next'), { what: 'the next row through the only slot' });
    const [row] = await outbox.forNotification(deaf);
    assert.equal(row!.attempts, 1);
    assert.match(String(row!.last_error), /timed out after 200 ms/);
  });

  test('never more than `concurrency` sends in flight, and every row goes out', async (t) => {
    const provider = new ScriptedProvider();
    const worker = new PushWorker(outbox, devices, { android: provider }, options({ concurrency: 3, batch: 50 }), log);
    t.after(() => worker.stop());
    const tokens = Array.from({ length: 20 }, (_, i) => `ok-pool-${i}`);
    const id = await queue(tokens);
    worker.start();
    await eventually(() => provider.sent.length === 20, { what: 'all 20 sends' });
    assert.equal(provider.maxInflight, 3);
    const rows = await outbox.forNotification(id);
    assert.deepEqual(new Set(rows.map((r) => r.status)), new Set(['sent']));
  });
});
