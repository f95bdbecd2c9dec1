/**
 * Delivery over a fake socket: resubscribing with `since`, once-and-in-order across reconnects
 * and races, gaps filled with `history` or reported, receipts batched after the handler,
 * positions through an async storage adapter (a cold start), publish retries and errors,
 * presence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeSocket, harness, msg, settle } from './fakes.js';
import type { GapEvent, Message, RecoveredEvent, StorageAdapter } from '../src/index.js';

const offsets = (ms: Message[]) => ms.map((m) => m.offset);

test('after a reconnect every topic is subscribed again with since = the last offset handled and its epoch, the user channel first', async () => {
  const h = await harness();
  const got: Message[] = [];
  h.ob.subscribe('room:1', (m) => got.push(m));
  h.ob.subscribe('user:u1', (m) => got.push(m));
  await settle();
  const s = FakeSocket.last();
  s.accept();
  assert.deepEqual(s.ops('sub').map((f) => [f.topic, f.since]), [['user:u1', undefined], ['room:1', undefined]]);
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  for (let i = 1; i <= 3; i++) s.receive(msg('room:1', i));
  s.receive(msg('user:u1', 1));
  s.serverClose(1006);
  await h.clock.advance(500);
  const s2 = FakeSocket.last();
  s2.accept();
  assert.deepEqual(s2.ops('sub').map((f) => [f.topic, f.since]), [['user:u1', { offset: 1, epoch: 'E' }], ['room:1', { offset: 3, epoch: 'E' }]]);
  h.ob.close();
});

test('replay and live messages racing, repeats across a reconnect: each offset reaches the handler once, in order; `subscribed` on each connection, `recovered` when caught up', async () => {
  const h = await harness();
  const got: Message[] = [];
  const recovered: RecoveredEvent[] = [];
  const sub = h.ob.subscribe('room:1', (m) => got.push(m));
  sub.on('recovered', (e) => recovered.push(e));
  const subscribed: unknown[] = [];
  sub.on('subscribed', (e) => subscribed.push(e));
  await settle();
  FakeSocket.last().accept();
  FakeSocket.last().ackSubs(() => ({ offset: 2, epoch: 'E' }));
  FakeSocket.last().receive(msg('room:1', 3));
  FakeSocket.last().receive(msg('room:1', 4));
  FakeSocket.last().serverClose(1006);
  await h.clock.advance(500);
  const s = FakeSocket.last();
  s.accept();
  // A live message overtakes the replay, then the replay repeats one already handled.
  s.receive(msg('room:1', 8));
  s.ackSubs(() => ({ offset: 7, epoch: 'E', recovered: true }));
  for (const o of [4, 5, 6, 7, 8, 9]) s.receive(msg('room:1', o));
  assert.deepEqual(offsets(got), [3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(recovered, [{ topic: 'room:1', since: 4, offset: 7 }]);
  assert.deepEqual(subscribed, [{ topic: 'room:1', offset: 2, epoch: 'E' }, { topic: 'room:1', offset: 7, epoch: 'E' }], 'once per connection');
  h.ob.close();
});

test('a gap in the live stream that the server does not fill is read with history after gapFillMs, page by page', async () => {
  const h = await harness({ gapFillMs: 300 });
  const got: Message[] = [];
  h.ob.subscribe('room:1', (m) => got.push(m));
  await settle();
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  s.receive(msg('room:1', 1));
  s.receive(msg('room:1', 150));
  await h.clock.advance(299);
  assert.equal(s.ops('history').length, 0, 'the server gets its chance first');
  await h.clock.advance(1);
  const [h1] = s.ops('history');
  assert.deepEqual([h1!.topic, h1!.since, h1!.limit], ['room:1', { offset: 1, epoch: 'E' }, 100]);
  const entries = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ offset: from + i, ts: 1, data: from + i }));
  s.receive({ op: 'ack', id: h1!.id, ack: 'history', topic: 'room:1', messages: entries(2, 101), offset: 150, epoch: 'E', recovered: true, more: true });
  await settle();
  const h2 = s.ops('history')[1]!;
  assert.deepEqual(h2.since, { offset: 101, epoch: 'E' });
  s.receive({ op: 'ack', id: h2.id, ack: 'history', topic: 'room:1', messages: entries(102, 150), offset: 150, epoch: 'E', recovered: true, more: false });
  await settle();
  assert.deepEqual(offsets(got), Array.from({ length: 150 }, (_, i) => i + 1));
  h.ob.close();
});

test('history cannot fill it (recovered:false): `gap` names the missing range and what waits is delivered in order', async () => {
  const h = await harness({ gapFillMs: 100 });
  const got: Message[] = [];
  const gaps: GapEvent[] = [];
  h.ob.subscribe('room:1', (m) => got.push(m)).on('gap', (g) => gaps.push(g));
  await settle();
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 10, epoch: 'E' }));
  s.receive(msg('room:1', 21));
  s.receive(msg('room:1', 20));
  await h.clock.advance(100);
  const q = s.ops('history')[0]!;
  s.receive({ op: 'ack', id: q.id, ack: 'history', topic: 'room:1', messages: [], offset: 21, epoch: 'E', recovered: false, more: false });
  await settle();
  assert.deepEqual(gaps, [{ topic: 'room:1', since: 10, offset: 19, epoch: 'E' }]);
  assert.deepEqual(offsets(got), [20, 21]);
  h.ob.close();
});

test('sub answered recovered:false (store replaced, log trimmed): `gap`, then live messages from the new head', async () => {
  const storage = memory({ 'onebox:pos:room:1': JSON.stringify({ offset: 5, epoch: 'OLD' }) });
  const h = await harness({ storage });
  const got: Message[] = [];
  const gaps: GapEvent[] = [];
  h.ob.subscribe('room:1', (m) => got.push(m)).on('gap', (g) => gaps.push(g));
  await settle();
  const s = FakeSocket.last();
  s.accept();
  assert.deepEqual(s.ops('sub')[0]!.since, { offset: 5, epoch: 'OLD' });
  s.ackSubs(() => ({ offset: 40, epoch: 'NEW', recovered: false }));
  s.receive(msg('room:1', 41));
  assert.deepEqual(gaps, [{ topic: 'room:1', since: 5, offset: 40, epoch: 'NEW' }]);
  assert.deepEqual(offsets(got), [41]);
  h.ob.close();
});

test('receipts: one cumulative recv per flush for the user channel, sent after the handler ran; none for other topics', async () => {
  const h = await harness({ flushMs: 100 });
  const s = FakeSocket.last();
  const recvAtHandler: number[] = [];
  h.ob.subscribe('user:u1', () => recvAtHandler.push(s.ops('recv').length));
  h.ob.subscribe('room:1', () => undefined);
  await settle();
  s.accept();
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  for (let i = 1; i <= 10; i++) s.receive(msg('user:u1', i));
  for (let i = 1; i <= 10; i++) s.receive(msg('room:1', i));
  assert.equal(s.ops('recv').length, 0, 'batched, not one per message');
  await h.clock.advance(100);
  assert.deepEqual(s.ops('recv'), [{ op: 'recv', topic: 'user:u1', offset: 10 }]);
  assert.deepEqual(recvAtHandler, Array(10).fill(0), 'no receipt before its handler ran');
  s.receive(msg('user:u1', 11));
  s.receive(msg('user:u1', 13)); // waits for 12: the receipt stays at the contiguous 11
  await h.clock.advance(100);
  assert.deepEqual(s.ops('recv').slice(1), [{ op: 'recv', topic: 'user:u1', offset: 11 }]);
  await h.clock.advance(1000);
  assert.equal(s.ops('recv').length, 2, 'nothing new, nothing sent');
  h.ob.close();
});

test('a handler that throws: `error` on its subscription, the next messages still come, the receipt covers it', async () => {
  const h = await harness();
  const errors: unknown[] = [];
  const got: number[] = [];
  h.ob.subscribe('user:u1', (m) => {
    if (m.offset === 1) throw new Error('app bug');
    got.push(m.offset!);
  }).on('error', (e) => errors.push(e.code));
  await settle();
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  s.receive(msg('user:u1', 1));
  s.receive(msg('user:u1', 2));
  await h.clock.advance(100);
  assert.deepEqual([errors, got, s.ops('recv').map((f) => f.offset)], [['handler_failed'], [2], [2]]);
  h.ob.close();
});

/** An AsyncStorage-shaped adapter: every call resolves later. */
function memory(init: Record<string, string> = {}): StorageAdapter & { items: Map<string, string> } {
  const items = new Map(Object.entries(init));
  return {
    items,
    getItem: async (k) => items.get(k) ?? null,
    setItem: async (k, v) => void items.set(k, v),
  };
}

test('positions survive a cold start through an async storage adapter: the next client resumes with since', async () => {
  const storage = memory();
  const h = await harness({ storage, flushMs: 50 });
  h.ob.subscribe('room:1', () => undefined);
  await settle();
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 3, epoch: 'E' }));
  s.receive(msg('room:1', 4));
  await h.clock.advance(50);
  assert.deepEqual(JSON.parse(storage.items.get('onebox:pos:room:1')!), { offset: 4, epoch: 'E' });
  h.ob.close();

  const again = await harness({ storage });
  again.ob.subscribe('room:1', () => undefined);
  await settle();
  FakeSocket.last().accept();
  assert.deepEqual(FakeSocket.last().ops('sub')[0]!.since, { offset: 4, epoch: 'E' });
  again.ob.close();
});

test('recover:false: no since, nothing stored', async () => {
  const storage = memory({ 'onebox:pos:room:1': JSON.stringify({ offset: 5, epoch: 'E' }) });
  const h = await harness({ storage });
  h.ob.subscribe('room:1', () => undefined, { recover: false });
  FakeSocket.last().accept();
  assert.equal(FakeSocket.last().ops('sub')[0]!.since, undefined);
  FakeSocket.last().ackSubs(() => ({ offset: 9, epoch: 'E' }));
  await h.clock.advance(1000);
  assert.equal(storage.items.get('onebox:pos:room:1'), JSON.stringify({ offset: 5, epoch: 'E' }));
  h.ob.close();
});

test('publish: sent again with the same key after a reconnect until acked; the subscription goes first on the new connection', async () => {
  const h = await harness();
  h.ob.subscribe('room:1', () => undefined, { recover: false });
  const p = h.ob.publish('room:1', { text: 'hi' });
  FakeSocket.last().accept();
  assert.equal(FakeSocket.last().ops('pub').length, 0, 'not before the topic is subscribed again');
  FakeSocket.last().ackSubs(() => ({ offset: 0, epoch: 'E' }));
  const first = FakeSocket.last().ops('pub')[0]!;
  FakeSocket.last().serverClose(1006);
  await h.clock.advance(500);
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 1, epoch: 'E' }));
  const second = s.ops('pub')[0]!;
  assert.deepEqual([second.key, second.data], [first.key, { text: 'hi' }]);
  assert.match(first.key, /^[\x21-\x7e]{1,128}$/, 'a key the server takes');
  s.receive({ op: 'ack', id: second.id, ack: 'pub', topic: 'room:1', offset: 1, epoch: 'E' });
  assert.deepEqual(await p, { offset: 1, epoch: 'E' });
  h.ob.close();
});

test('publish: a refusal rejects with its code; rate_limited is retried; no ack before the deadline rejects with timeout', async () => {
  const h = await harness();
  const s = FakeSocket.last();
  s.accept();
  const forbidden = h.ob.publish('public:x', 1);
  s.receive({ op: 'error', id: s.ops('pub')[0]!.id, code: 'publish_forbidden', message: 'no' });
  await assert.rejects(forbidden, { name: 'OneboxError', code: 'publish_forbidden', topic: 'public:x' });

  const limited = h.ob.publish('room:1', 2);
  const id = s.ops('pub')[1]!.id;
  s.receive({ op: 'error', id, code: 'rate_limited', message: 'slow down' });
  await h.clock.advance(1500);
  const retry = s.ops('pub')[2]!;
  assert.equal(retry.id, id);
  s.receive({ op: 'ack', id, ack: 'pub', topic: 'room:1', offset: 3, epoch: 'E' });
  assert.deepEqual(await limited, { offset: 3, epoch: 'E' });

  const late = assert.rejects(h.ob.publish('room:1', 3, { timeoutMs: 2000 }), { code: 'timeout' });
  await h.clock.advance(2000);
  await late;
  h.ob.close();
});

test('presence: the op answers count and members; join/leave/count frames reach the subscription', async () => {
  const h = await harness();
  const events: unknown[] = [];
  h.ob.subscribe('room:1', () => undefined, { recover: false }).on('presence', (e) => events.push(e));
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  const p = h.ob.presence('room:1');
  const q = s.ops('presence')[0]!;
  s.receive({ op: 'ack', id: q.id, ack: 'presence', topic: 'room:1', count: 2, members: [{ user: 'a', conns: 1 }, { user: 'b', conns: 0 }], more: false });
  assert.deepEqual(await p, { count: 2, members: [{ user: 'a', conns: 1 }, { user: 'b', conns: 0 }], more: false });
  s.receive({ op: 'presence', topic: 'room:1', join: 'c' });
  s.receive({ op: 'presence', topic: 'room:1', leave: 'a' });
  s.receive({ op: 'presence', topic: 'room:1', count: 1500 });
  assert.deepEqual(events, [{ topic: 'room:1', join: 'c' }, { topic: 'room:1', leave: 'a' }, { topic: 'room:1', count: 1500 }]);
  h.ob.close();
});

test('a refused sub or membership_revoked ends the subscription with an `error` (code kept); it is not sent again', async () => {
  const h = await harness();
  const errs: string[] = [];
  h.ob.subscribe('room:a', () => undefined, { recover: false }).on('error', (e) => errs.push(e.code));
  h.ob.subscribe('room:b', () => undefined, { recover: false }).on('error', (e) => errs.push(e.code));
  const s = FakeSocket.last();
  s.accept();
  const [a, b] = s.ops('sub');
  s.receive({ op: 'error', id: a!.id, code: 'forbidden_topic', message: 'no' });
  s.receive({ op: 'ack', id: b!.id, ack: 'sub', topic: 'room:b', offset: 0, epoch: 'E' });
  s.receive({ op: 'error', code: 'membership_revoked', message: 'gone', topic: 'room:b' });
  assert.deepEqual(errs, ['forbidden_topic', 'membership_revoked']);
  s.serverClose(1006);
  await h.clock.advance(500);
  FakeSocket.last().accept();
  assert.deepEqual(FakeSocket.last().ops('sub'), []);
  h.ob.close();
});

test('unsubscribe: unsub is sent once the last subscription of the topic is gone; no more messages reach it', async () => {
  const h = await harness();
  const got: number[] = [];
  const one = h.ob.subscribe('room:1', (m) => got.push(m.offset!), { recover: false });
  const two = h.ob.subscribe('room:1', () => undefined, { recover: false });
  const s = FakeSocket.last();
  s.accept();
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  one.unsubscribe();
  assert.equal(s.ops('unsub').length, 0);
  two.unsubscribe();
  assert.deepEqual(s.ops('unsub').map((f) => f.topic), ['room:1']);
  s.receive(msg('room:1', 1));
  assert.deepEqual(got, []);
  h.ob.close();
});
