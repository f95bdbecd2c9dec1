import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReceiptBatcher } from '../../src/realtime/receipts.js';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('receipts keep the highest offset per user and topic, one write per batch', async () => {
  const batches: Array<Array<{ topic: string; offset: number }>> = [];
  const b = new ReceiptBatcher(async (batch) => void batches.push(batch.map(({ topic, offset }) => ({ topic, offset }))), (err) => assert.fail(String(err)), 10_000);
  b.add('u', 't', 3);
  b.add('u', 't', 7);
  b.add('u', 't', 5);
  b.add('u', 'v', 1);
  await b.flush();
  assert.deepEqual(batches, [[{ topic: 't', offset: 7 }, { topic: 'v', offset: 1 }]]);
});

test('a shutdown flush during another flush resolves only once everything is written', async () => {
  const written: number[] = [];
  let release!: () => void;
  let first = true;
  const b = new ReceiptBatcher(
    async (batch) => {
      if (first) {
        first = false;
        await new Promise<void>((r) => (release = r));
      } else await wait(20);
      written.push(...batch.map((x) => x.offset));
    },
    () => undefined,
    1,
  );
  b.add('u', 't1', 1);
  const timerFlush = b.flush();
  await wait(0);
  b.add('u', 't2', 2);
  await wait(5);
  const shutdown = b.flush();
  release();
  await timerFlush;
  await shutdown;
  assert.deepEqual(written, [1, 2]);
});
