import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conn } from '../../src/realtime/conn.js';
import { LocalHub, type Outgoing } from '../../src/realtime/hub.js';
import { Registry } from '../../src/realtime/registry.js';

const conn = (id: number, userId = `u${id}`) => new Conn(id, userId, '127.0.0.1', 0);

/** One message as the hub takes it: fire-and-forget (no offset), at time 0. */
const out = (topic: string, data: unknown, from: string | null = null): Outgoing => ({ topic, dataJson: JSON.stringify(data), from, offset: null, ts: 0 });

/** A hub over a fresh registry whose deliveries are recorded as [conn id, text]. */
function hub(onDeliver?: (conn: Conn, text: string) => void) {
  const registry = new Registry();
  const delivered: Array<[number, string]> = [];
  const local = new LocalHub(
    registry,
    (c, text) => {
      delivered.push([c.id, text]);
      onDeliver?.(c, text);
    },
    async () => [],
    (err) => assert.fail(String(err)),
  );
  return { registry, local, delivered };
}

test('publish hands the frame to each subscriber of the topic exactly once, and to nobody else', async () => {
  const { registry, local, delivered } = hub();
  const subs = [conn(1), conn(2), conn(3)];
  for (const c of subs) registry.subscribe(c, 'news');
  registry.subscribe(subs[0]!, 'other');
  registry.subscribe(conn(4), 'other');
  assert.equal(await local.publish(out('news', { n: 1 }, 'alice')), 3);
  assert.deepEqual(delivered.map(([id]) => id).sort(), [1, 2, 3]);
  for (const [, text] of delivered) assert.deepEqual(JSON.parse(text), { op: 'msg', topic: 'news', ts: 0, data: { n: 1 }, from: 'alice' });
});

test('publish to a topic nobody holds reaches nobody and answers 0', async () => {
  const { local, delivered } = hub();
  assert.equal(await local.publish(out('empty', 1)), 0);
  assert.equal(await local.publish(out('user:nobody', 1)), 0);
  assert.deepEqual(delivered, []);
});

test('the frame is built once per publish, whatever the number of subscribers', async () => {
  const { registry, local, delivered } = hub();
  for (let i = 1; i <= 50; i++) registry.subscribe(conn(i), 'big');
  let built = 0;
  const m = out('big', { x: 1 });
  // The payload arrives serialized; the frame around it is made once and shared.
  const dataJson = m.dataJson;
  Object.defineProperty(m, 'dataJson', { get: () => (built++, dataJson) });
  assert.equal(await local.publish(m), 50);
  assert.equal(built, 1);
  assert.equal(new Set(delivered.map(([, text]) => text)).size, 1, 'every subscriber got the same text');
});

test('a subscriber dropped during fan-out does not stop delivery to the others', async () => {
  const subs = [conn(1), conn(2), conn(3), conn(4)];
  // The first delivery drops two subscribers, as the gateway does with a slow consumer:
  // itself and one not yet visited. Iterating the live Set would skip the rest.
  const { registry, local, delivered } = hub((c) => {
    if (c.id === 1) {
      registry.unsubscribeAll(subs[0]!);
      registry.unsubscribeAll(subs[1]!);
    }
  });
  for (const c of subs) registry.subscribe(c, 't');
  assert.equal(await local.publish(out('t', 'x')), 4);
  assert.deepEqual(delivered.map(([id]) => id), [1, 2, 3, 4]);
  assert.deepEqual([...registry.topics.get('t')!].map((c) => c.id), [3, 4]);
});

test('sendToUser reaches every connection of that user and no other', async () => {
  const { registry, local, delivered } = hub();
  const a1 = conn(1, 'alice');
  const a2 = conn(2, 'alice');
  const a3 = conn(3, 'alice');
  const b1 = conn(4, 'bob');
  for (const c of [a1, b1]) registry.addUser(c);
  assert.equal(await local.publish(out('user:alice', 'one')), 1, 'a single connection');
  registry.addUser(a2);
  registry.addUser(a3);
  delivered.length = 0;
  assert.equal(await local.publish(out('user:alice', { hi: true })), 3);
  assert.deepEqual(delivered.map(([id]) => id).sort(), [1, 2, 3]);
  for (const [, text] of delivered) assert.deepEqual(JSON.parse(text), { op: 'msg', topic: 'user:alice', ts: 0, data: { hi: true } });
});

test("publishText delivers the given text as is, to a topic's subscribers and to a user's channel", () => {
  const { registry, local, delivered } = hub();
  const c = conn(1, 'alice');
  registry.addUser(c);
  registry.subscribe(c, 't');
  assert.equal(local.publishText('t', 'T', null), 1);
  assert.equal(local.publishText('user:alice', 'U', null), 1);
  assert.deepEqual(delivered, [[1, 'T'], [1, 'U']]);
});
