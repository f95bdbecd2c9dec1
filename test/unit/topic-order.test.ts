import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOLD_MS, TopicOrder } from '../../src/realtime/topic-order.js';
import { eventually } from '../kit/eventually.js';

/** A gate over a fake store holding offsets 1..n of topic `t`. */
function gate(stored: number[] = []) {
  const delivered: number[] = [];
  const reads: Array<[number, number]> = [];
  const order = new TopicOrder(
    (_topic, _text, offset) => delivered.push(offset),
    async (_topic, after, before) => {
      reads.push([after, before]);
      return stored.filter((o) => o > after && o < before).map((offset) => ({ offset, text: `m${offset}` }));
    },
    (topic) => topic === 't',
    (err) => assert.fail(String(err)),
  );
  return { order, delivered, reads };
}

test('in-order arrivals are delivered at once; repeats are dropped', () => {
  const { order, delivered } = gate();
  order.startAt('t', 4);
  for (const o of [5, 6, 6, 3, 7]) order.arrive('t', o, `m${o}`);
  assert.deepEqual(delivered, [5, 6, 7]);
  assert.equal(order.last('t'), 7);
});

test('a topic without local connections delivers nothing; the first message starts one that has them', () => {
  const { order, delivered } = gate();
  order.arrive('other', 1, 'x');
  order.arrive('t', 9, 'm9');
  order.arrive('t', 10, 'm10');
  assert.deepEqual(delivered, [9, 10]);
});

test('an early arrival waits for the missing one and both go out in order', async () => {
  const { order, delivered, reads } = gate();
  order.startAt('t', 1);
  order.arrive('t', 3, 'm3');
  assert.deepEqual(delivered, []);
  order.arrive('t', 2, 'm2');
  assert.deepEqual(delivered, [2, 3]);
  await new Promise((r) => setTimeout(r, HOLD_MS * 2));
  assert.deepEqual(reads, [], 'no store read when the gap closed live');
});

test('a gap still open after the hold is filled from the store, then the held ones follow', async () => {
  const { order, delivered, reads } = gate([2, 3, 4]);
  order.startAt('t', 1);
  order.arrive('t', 5, 'm5');
  order.arrive('t', 6, 'm6');
  await eventually(() => delivered.length === 5, { what: 'the filled gap and the held messages', timeoutMs: 2000 });
  assert.deepEqual(delivered, [2, 3, 4, 5, 6]);
  assert.deepEqual(reads, [[1, 5]]);
  // The missing ones arriving late are repeats now.
  order.arrive('t', 3, 'm3');
  assert.deepEqual(delivered, [2, 3, 4, 5, 6]);
});

test('offsets trimmed from the store are skipped: delivery goes on from the first held', async () => {
  const { order, delivered } = gate([]);
  order.startAt('t', 1);
  order.arrive('t', 4, 'm4');
  await eventually(() => delivered.length === 1, { what: 'the held message', timeoutMs: 2000 });
  assert.deepEqual(delivered, [4]);
  order.arrive('t', 5, 'm5');
  assert.deepEqual(delivered, [4, 5]);
});

test('a gap the store cannot answer for now is held and filled later, never skipped', async () => {
  const out: number[] = [];
  let fail = true;
  const order = new TopicOrder(
    (_t, _x, offset) => out.push(offset),
    async (_t, after, before) => {
      if (fail) throw new Error('busy');
      return Array.from({ length: before - after - 1 }, (_, i) => ({ offset: after + 1 + i, text: '' }));
    },
    () => true,
    () => undefined,
  );
  order.startAt('t', 0);
  order.arrive('t', 1, '');
  order.arrive('t', 3, '');
  await new Promise((r) => setTimeout(r, HOLD_MS * 1.5));
  assert.deepEqual(out, [1], 'nothing skipped while the store fails');
  fail = false;
  order.arrive('t', 4, '');
  await eventually(() => out.length === 4, { what: 'the filled gap', timeoutMs: 3000 });
  assert.deepEqual(out, [1, 2, 3, 4]);
});

test('with other processes publishing, the first two messages of a topic may cross and still go out in order', async () => {
  const out: number[] = [];
  const order = new TopicOrder((_t, _x, offset) => out.push(offset), async () => [], () => true, () => undefined, true);
  order.arrive('user:a', 11, '');
  order.arrive('user:a', 10, '');
  assert.deepEqual(out, []);
  await eventually(() => out.length === 2, { what: 'both messages after the hold', timeoutMs: 2000 });
  assert.deepEqual(out, [10, 11]);
  order.arrive('user:a', 12, '');
  assert.deepEqual(out, [10, 11, 12]);
});
