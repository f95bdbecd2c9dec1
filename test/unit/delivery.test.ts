/**
 * Delivery v2 invariants through the gateway, over an in-memory log and a fake transport:
 * recovery hands over to live delivery with no gap and no repeat, history pages, receipts
 * are batched and clamped, durable pubs are acknowledged with their offset and idempotent.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { LocalLimits } from '../../src/lib/local-limits.js';
import { createLogger } from '../../src/observability/logger.js';
import { Channels, DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import type { HistoryLog, LogPage } from '../../src/realtime/delivery.js';
import { Gateway, type SocketOps } from '../../src/realtime/gateway.js';
import { ReceiptBatcher, type Receipt } from '../../src/realtime/receipts.js';
import { eventually } from '../kit/eventually.js';

type Entry = LogPage['entries'][number];

/** An in-memory log; `readDelayMs` makes replays slow enough for live traffic to overtake them. */
class MemoryLog implements HistoryLog {
  readonly topics = new Map<string, Entry[]>();
  readonly keys = new Map<string, { offset: number; content: string }>();
  readDelayMs = 0;
  oldest = new Map<string, number>();
  epoch = async () => 'e1';
  async append(m: { topic: string; data: string; from: string | null; ts: number }): Promise<number> {
    return this.appendNow(m);
  }
  /** Commits are atomic: check and write happen in one step, as in a transaction. */
  private appendNow(m: { topic: string; data: string; from: string | null; ts: number }): number {
    const list = this.topics.get(m.topic) ?? [];
    this.topics.set(m.topic, list);
    const offset = (list.at(-1)?.offset ?? 0) + 1;
    list.push({ offset, ts: m.ts, data: m.data, from: m.from });
    return offset;
  }
  async appendOnce(scope: string, key: string, m: { topic: string; data: string; from: string | null; ts: number }) {
    const k = `${scope}\n${key}`;
    const content = `${m.topic}\n${m.data}`;
    const seen = this.keys.get(k);
    if (seen) return seen.content === content ? { offset: seen.offset, fresh: false } : ('conflict' as const);
    const offset = this.appendNow(m);
    this.keys.set(k, { offset, content });
    return { offset, fresh: true };
  }
  /** Sees what was committed when it was called, as a store's read does, and answers after readDelayMs. */
  async read(topic: string, after: number, limit: number): Promise<LogPage> {
    const all = (this.topics.get(topic) ?? []).filter((e) => e.offset >= (this.oldest.get(topic) ?? 0));
    const head = this.topics.get(topic)?.at(-1)?.offset ?? 0;
    const after_ = all.filter((e) => e.offset > after);
    if (this.readDelayMs) await new Promise((r) => setTimeout(r, this.readDelayMs));
    return { entries: after_.slice(0, limit), head, oldest: all[0]?.offset ?? head + 1, more: after_.length > limit };
  }
  async head(topic: string): Promise<number> {
    return this.topics.get(topic)?.at(-1)?.offset ?? 0;
  }
}

/** A fake engine: every frame sent to a socket, by socket. */
function fakeOps() {
  const sent = new Map<string, unknown[]>();
  const ops: SocketOps = {
    send: (s, text) => sent.get(s as string)!.push(JSON.parse(text)),
    buffered: () => 0,
    ping: () => undefined,
    close: () => undefined,
    terminate: () => undefined,
  };
  return { ops, sent };
}

async function setup() {
  const log = new MemoryLog();
  const written: Receipt[][] = [];
  const receipts = new ReceiptBatcher(async (b) => void written.push(b), (err) => assert.fail(String(err)), 20);
  const config = loadConfig({ MAX_CONNECTIONS: '100', WS_PUBLISH_PER_S: '1000' });
  const gw = new Gateway(config, {
    authenticate: async (req) => ({ ok: true, userId: new URL(req.url, 'http://x').searchParams.get('u')! }),
    limits: new LocalLimits(),
    log: createLogger('silent'),
    // `room` open to every signed-in user: access rules have their own tests (channels.test.ts).
    channels: new Channels({ ...DEFAULT_NAMESPACES, room: { ...DEFAULT_NAMESPACES.room!, subscribe: 'authenticated', publish: 'authenticated' } }),
    history: { log, receipts },
  });
  const { ops, sent } = fakeOps();
  gw.attach(ops);
  const connect = async (name: string, user = name) => {
    const d = await gw.authorize({ url: `/v1/ws?u=${user}`, authorization: undefined, ip: '127.0.0.1', forwarded: undefined, version: '13', key: 'dGhlIHNhbXBsZSBub25jZQ==' });
    assert.ok(d.ok);
    sent.set(name, []);
    gw.open(d.conn, name);
    const frames = sent.get(name) as Array<Record<string, any>>;
    assert.equal(frames.shift()?.op, 'hello', 'hello comes first');
    return {
      conn: d.conn,
      frames,
      send: (f: object) => gw.message(d.conn, JSON.stringify(f), false),
      offsets: (topic: string) => frames.filter((f) => f.op === 'msg' && f.topic === topic).map((f) => f.offset as number),
    };
  };
  /** Commit and fan out, as a publish from this or another process would. */
  const publish = async (topic: string, n: number) => {
    const ts = Date.now();
    const offset = await log.append({ topic, data: JSON.stringify({ n }), from: null, ts });
    await gw.hub.publish({ topic, dataJson: JSON.stringify({ n }), from: null, offset, ts });
    return offset;
  };
  return { gw, log, connect, publish, written, receipts };
}

test('sub with since replays every missed message in order, then live ones, with no repeat', async () => {
  const { gw, log, connect, publish } = await setup();
  for (let i = 1; i <= 50; i++) await log.append({ topic: 'room:1', data: String(i), from: null, ts: i });
  const other = await connect('other');
  other.send({ op: 'sub', topic: 'room:1', id: 1 });
  await eventually(() => other.frames.some((f) => f.op === 'ack'), { what: 'the first subscriber' });
  log.readDelayMs = 30;
  const c = await connect('c');
  c.send({ op: 'sub', topic: 'room:1', id: 's', since: { offset: 0, epoch: 'e1' } });
  // Live traffic overtakes the replay.
  for (let i = 51; i <= 60; i++) await publish('room:1', i);
  await eventually(() => c.offsets('room:1').length >= 60, { what: 'all 60 messages' });
  for (let i = 61; i <= 65; i++) await publish('room:1', i);
  await eventually(() => c.offsets('room:1').length >= 65, { what: 'the live ones after' });
  const ack = c.frames.find((f) => f.op === 'ack')!;
  assert.equal(ack.recovered, true);
  assert.equal(ack.epoch, 'e1');
  assert.deepEqual(c.offsets('room:1'), Array.from({ length: 65 }, (_, i) => i + 1));
  assert.ok(c.frames.indexOf(ack) < c.frames.findIndex((f) => f.op === 'msg'), 'the ack comes before the replay');
  assert.deepEqual(other.offsets('room:1'), Array.from({ length: 15 }, (_, i) => i + 51));
  gw.stop();
});

test("sub with since on the user's own channel replays only what did not already arrive live", async () => {
  const { gw, log, connect, publish } = await setup();
  const topic = 'user:u1';
  for (let i = 1; i <= 50; i++) await log.append({ topic, data: String(i), from: null, ts: i });
  const c = await connect('c', 'u1');
  // The channel needs no sub: a notification reaches the connection before its sub since.
  await publish(topic, 51);
  log.readDelayMs = 30;
  c.send({ op: 'sub', topic, id: 's', since: { offset: 0, epoch: 'e1' } });
  await publish(topic, 52); // while the replay reads
  await eventually(() => c.offsets(topic).length >= 52, { what: 'the replay' });
  await publish(topic, 53);
  await eventually(() => c.offsets(topic).includes(53), { what: 'the live one after' });
  assert.deepEqual(c.offsets(topic), [51, 52, ...Array.from({ length: 50 }, (_, i) => i + 1), 53]);
  assert.equal(c.frames.find((f) => f.id === 's')!.recovered, true);

  // Nothing live before the sub, one while it reads: it waits for the replay and comes once, in order.
  const d = await connect('d', 'u1');
  d.send({ op: 'sub', topic, id: 's', since: { offset: 40, epoch: 'e1' } });
  await publish(topic, 54);
  await eventually(() => d.offsets(topic).length >= 14, { what: 'the second replay' });
  await publish(topic, 55);
  await eventually(() => d.offsets(topic).includes(55), { what: 'the live one after' });
  assert.deepEqual(d.offsets(topic), [...Array.from({ length: 14 }, (_, i) => i + 41), 55]);
  gw.stop();
});

test('live messages that keep coming during a replay of several reads are neither interleaved nor repeated', async () => {
  const { gw, log, connect, publish } = await setup();
  for (let i = 1; i <= 50; i++) await log.append({ topic: 'room:1', data: String(i), from: null, ts: i });
  const other = await connect('other');
  other.send({ op: 'sub', topic: 'room:1', id: 1 });
  await eventually(() => other.frames.some((f) => f.op === 'ack'), { what: 'the first subscriber' });
  log.readDelayMs = 20;
  const c = await connect('c');
  c.send({ op: 'sub', topic: 'room:1', id: 's', since: { offset: 0, epoch: 'e1' } });
  // A steady stream over several reads: each read finds more, live ones arrive meanwhile.
  for (let i = 51; i <= 70; i++) {
    await publish('room:1', i);
    await new Promise((r) => setTimeout(r, 5));
  }
  log.readDelayMs = 0;
  await publish('room:1', 71);
  await eventually(() => c.offsets('room:1').includes(71), { what: 'the last live message' });
  assert.deepEqual(c.offsets('room:1'), Array.from({ length: 71 }, (_, i) => i + 1));
  gw.stop();
});

test('sub with a trimmed offset or another epoch: recovered false, no replay, the current position', async () => {
  const { gw, log, connect } = await setup();
  for (let i = 1; i <= 10; i++) await log.append({ topic: 'room:1', data: String(i), from: null, ts: i });
  log.oldest.set('room:1', 6);
  const c = await connect('c');
  c.send({ op: 'sub', topic: 'room:1', id: 'trimmed', since: { offset: 2, epoch: 'e1' } });
  c.send({ op: 'sub', topic: 'room:2', id: 'epoch', since: { offset: 0, epoch: 'old' } });
  c.send({ op: 'sub', topic: 'room:3', id: 'ahead', since: { offset: 99, epoch: 'e1' } });
  await eventually(() => c.frames.filter((f) => f.op === 'ack').length === 3, { what: 'three acks' });
  const ack = (id: string) => c.frames.find((f) => f.id === id)!;
  assert.deepEqual([ack('trimmed').recovered, ack('trimmed').offset], [false, 10]);
  assert.deepEqual([ack('epoch').recovered, ack('epoch').epoch], [false, 'e1']);
  assert.equal(ack('ahead').recovered, false);
  assert.equal(c.offsets('room:1').length, 0);
  gw.stop();
});

test('a sub without since answers the current offset and epoch', async () => {
  const { gw, log, connect } = await setup();
  for (let i = 1; i <= 7; i++) await log.append({ topic: 'room:9', data: String(i), from: null, ts: i });
  const c = await connect('c');
  c.send({ op: 'sub', topic: 'room:9', id: 1 });
  await eventually(() => c.frames.find((f) => f.op === 'ack'), { what: 'the ack' });
  const ack = c.frames.find((f) => f.op === 'ack')!;
  assert.deepEqual([ack.offset, ack.epoch, 'recovered' in ack], [7, 'e1', false]);
  gw.stop();
});

test('history answers one bounded page with more, and recovered false past the head', async () => {
  const { gw, log, connect } = await setup();
  for (let i = 1; i <= 150; i++) await log.append({ topic: 'room:1', data: JSON.stringify({ i }), from: 'u', ts: i });
  const c = await connect('c');
  c.send({ op: 'history', id: 'h', topic: 'room:1', since: { offset: 10, epoch: 'e1' }, limit: 500 });
  c.send({ op: 'history', id: 'past', topic: 'room:1', since: { offset: 151, epoch: 'e1' } });
  await eventually(() => c.frames.filter((f) => f.ack === 'history').length === 2, { what: 'two history answers' });
  const h = c.frames.find((f) => f.id === 'h')!;
  assert.equal(h.messages.length, 100);
  assert.deepEqual([h.messages[0].offset, h.messages[0].data, h.messages[0].from], [11, { i: 11 }, 'u']);
  assert.deepEqual([h.more, h.recovered, h.offset], [true, true, 150]);
  assert.equal(c.frames.find((f) => f.id === 'past')!.recovered, false);
  assert.equal(c.offsets('room:1').length, 0, 'history does not subscribe');
  gw.stop();
});

test('recv is batched, keeps the highest offset, is clamped to what was delivered, and needs the topic', async () => {
  const { gw, connect, publish, written, receipts } = await setup();
  const c = await connect('c', 'alice');
  for (let i = 1; i <= 3; i++) await publish('user:alice', i);
  c.send({ op: 'recv', topic: 'user:alice', offset: 1 });
  c.send({ op: 'recv', topic: 'user:alice', offset: 3 });
  c.send({ op: 'recv', topic: 'user:alice', offset: 2 });
  c.send({ op: 'recv', topic: 'user:alice', offset: 99 });
  c.send({ op: 'recv', topic: 'user:bob', offset: 1 });
  c.send({ op: 'recv', topic: 'room:unheld', offset: 1 });
  await receipts.flush();
  assert.deepEqual(written, [[{ userId: 'alice', topic: 'user:alice', offset: 3 }]]);
  gw.stop();
});

test('recv covers what a replay delivered ahead of the live stream here', async () => {
  const { gw, log, connect, publish, written, receipts } = await setup();
  const c = await connect('c', 'alice');
  await publish('user:alice', 1);
  // Committed by another process whose fan-out has not reached this one (Redis slow or down).
  for (let i = 2; i <= 4; i++) await log.append({ topic: 'user:alice', data: String(i), from: null, ts: i });
  const d = await connect('d', 'alice');
  d.send({ op: 'sub', topic: 'user:alice', id: 's', since: { offset: 1, epoch: 'e1' } });
  await eventually(() => d.offsets('user:alice').length === 3, { what: 'the replay of 2..4' });
  d.send({ op: 'recv', topic: 'user:alice', offset: 4 });
  d.send({ op: 'recv', topic: 'user:alice', offset: 9 });
  await receipts.flush();
  assert.deepEqual(written, [[{ userId: 'alice', topic: 'user:alice', offset: 4 }]]);
  assert.deepEqual(c.offsets('user:alice'), [1]);
  gw.stop();
});

test('a durable pub is acked with its offset after the commit; a repeated key answers the same offset once', async () => {
  const { gw, connect } = await setup();
  const a = await connect('a');
  const b = await connect('b');
  b.send({ op: 'sub', topic: 'room:1', id: 's' });
  await eventually(() => b.frames.some((f) => f.op === 'ack'), { what: 'b subscribed' });
  for (let i = 0; i < 3; i++) a.send({ op: 'pub', topic: 'room:1', id: i, key: 'k1', data: { x: 1 } });
  a.send({ op: 'pub', topic: 'room:1', id: 'other', key: 'k1', data: { x: 2 } });
  await eventually(() => a.frames.length === 4, { what: 'four answers' });
  const acks = a.frames.filter((f) => f.op === 'ack');
  assert.deepEqual(acks.map((f) => [f.offset, f.epoch]), [[1, 'e1'], [1, 'e1'], [1, 'e1']]);
  assert.equal(a.frames.find((f) => f.id === 'other')!.code, 'idempotency_conflict');
  await eventually(() => b.offsets('room:1').length === 1, { what: 'the one message' });
  assert.deepEqual(b.offsets('room:1'), [1]);
  gw.stop();
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a caught-up since on a topic others hold: a message that goes live during the read still arrives', async () => {
  const { gw, log, connect, publish } = await setup();
  for (let i = 1; i <= 5; i++) await publish('room:1', i);
  const other = await connect('other');
  other.send({ op: 'sub', topic: 'room:1', id: 1 });
  await eventually(() => other.frames.some((f) => f.op === 'ack'), { what: 'the first subscriber' });
  const read = log.read.bind(log);
  // The read sees the log as it was when it started, and answers late.
  log.read = async (t: string, a: number, l: number) => {
    const page = await read(t, a, l);
    await wait(30);
    return page;
  };
  const c = await connect('c');
  c.send({ op: 'sub', topic: 'room:1', id: 's', since: { offset: 5, epoch: 'e1' } });
  await wait(5);
  log.read = read;
  await publish('room:1', 6);
  await wait(60);
  await publish('room:1', 7);
  await eventually(() => c.offsets('room:1').length >= 2, { what: 'both messages' });
  await wait(50);
  assert.deepEqual(c.offsets('room:1'), [6, 7]);
  gw.stop();
});

test("a user's channel recovered with since: a notify during the read comes once, in order", async () => {
  const { gw, log, connect, publish } = await setup();
  for (let i = 1; i <= 5; i++) await log.append({ topic: 'user:alice', data: String(i), from: null, ts: i });
  const c = await connect('c', 'alice');
  log.readDelayMs = 30;
  c.send({ op: 'sub', topic: 'user:alice', id: 's', since: { offset: 2, epoch: 'e1' } });
  await wait(5);
  log.readDelayMs = 0;
  await publish('user:alice', 6);
  await eventually(() => c.offsets('user:alice').length >= 4, { what: 'the replay and the notify' });
  await wait(50);
  assert.deepEqual(c.offsets('user:alice'), [3, 4, 5, 6]);
  gw.stop();
});

test('a replay whose store read fails leaves the topic live on that connection', async () => {
  const { gw, log, connect, publish } = await setup();
  for (let i = 1; i <= 150; i++) await publish('room:1', i);
  const c = await connect('c');
  const read = log.read.bind(log);
  let reads = 0;
  log.read = async (t: string, a: number, l: number) => {
    if (++reads === 2) throw new Error('store down');
    return read(t, a, l);
  };
  c.send({ op: 'sub', topic: 'room:1', id: 's', since: { offset: 0, epoch: 'e1' } });
  await eventually(() => c.frames.some((f) => f.op === 'error' && f.code === 'internal'), { what: 'the internal error frame' });
  log.read = read;
  await publish('room:1', 151);
  await eventually(() => c.offsets('room:1').at(-1) === 151, { what: 'the live message after the failure' });
  gw.stop();
});
