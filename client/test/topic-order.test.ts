/** One topic's order (src/topic.ts): once each, in offset order, across replays, live races and gaps. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TopicOrder } from '../src/topic.js';

const m = (offset: number) => ({ topic: 't', offset, data: offset, ts: 1 });
const offs = (ms: Array<{ offset?: number }>) => ms.map((x) => x.offset);

test('in order: each delivered at once; repeats and older offsets dropped', () => {
  const o = new TopicOrder({ offset: 4, epoch: 'e' });
  assert.deepEqual(offs(o.accept(m(5))), [5]);
  assert.deepEqual(offs(o.accept(m(5))), []);
  assert.deepEqual(offs(o.accept(m(3))), []);
  assert.deepEqual(offs(o.accept(m(6))), [6]);
  assert.equal(o.position?.offset, 6);
});

test('out of order: later offsets wait for the missing ones, then go in order; the gap is reported until filled', () => {
  const o = new TopicOrder({ offset: 0, epoch: 'e' });
  assert.deepEqual(offs(o.accept(m(3))), []);
  assert.deepEqual(offs(o.accept(m(2))), []);
  assert.equal(o.hasGap(), true);
  assert.equal(o.firstPending(), 2);
  assert.deepEqual(offs(o.accept(m(3))), [], 'a repeat while waiting');
  assert.deepEqual(offs(o.accept(m(1))), [1, 2, 3]);
  assert.equal(o.hasGap(), false);
});

test('recovered:true: live messages that came before the ack wait for the replay, then follow it (the user channel case)', () => {
  const o = new TopicOrder({ offset: 0, epoch: 'e' });
  assert.deepEqual(offs(o.accept(m(51))), []);
  assert.deepEqual(o.ack({ offset: 51, epoch: 'e', recovered: true }, true).deliver, []);
  assert.equal(o.replaying(), true);
  const got: number[] = [];
  for (let i = 1; i <= 50; i++) got.push(...(offs(o.accept(m(i))) as number[]));
  assert.deepEqual(got, Array.from({ length: 51 }, (_, i) => i + 1));
  assert.deepEqual(o.caughtUp(), { since: 0, offset: 51 });
  assert.equal(o.caughtUp(), undefined, 'reported once');
});

test('recovered:false: a gap from the old position to the head; what came live is still delivered; the new epoch is kept', () => {
  const o = new TopicOrder({ offset: 7, epoch: 'old' });
  o.accept(m(40));
  const r = o.ack({ offset: 40, epoch: 'new', recovered: false }, true);
  assert.deepEqual(r.gap, { since: 7 });
  assert.deepEqual(offs(r.deliver), [40]);
  assert.deepEqual(o.position, { offset: 40, epoch: 'new' });
  assert.deepEqual(offs(o.accept(m(41))), [41]);
});

test('a fresh subscription starts at the head the ack names (no gap event)', () => {
  const o = new TopicOrder();
  const r = o.ack({ offset: 12, epoch: 'e' }, false);
  assert.equal(r.gap, undefined);
  assert.deepEqual(o.position, { offset: 12, epoch: 'e' });
  assert.deepEqual(offs(o.accept(m(13))), [13]);
});

test('skipGap: offsets the log no longer has are skipped; what waits is delivered in order', () => {
  const o = new TopicOrder({ offset: 2, epoch: 'e' });
  o.accept(m(9));
  o.accept(m(8));
  const s = o.skipGap();
  assert.deepEqual([s.since, s.offset, offs(s.deliver)], [2, 7, [8, 9]]);
  assert.equal(o.position?.offset, 9);
});

test('a namespace without history: messages without offset pass straight through', () => {
  const o = new TopicOrder();
  o.ack({}, false);
  assert.equal(o.accept({ topic: 't', data: 1, ts: 1 }).length, 1);
  assert.equal(o.accept({ topic: 't', data: 1, ts: 1 }).length, 1);
});
