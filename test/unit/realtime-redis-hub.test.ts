/**
 * The Redis backplane without Redis: it is never started, so no socket is opened. Its receive
 * path is driven as its subscriber connection would drive it (the `pushed` handler given to
 * RespConnection as `onPush`), and its SUBSCRIBE traffic is read off that connection's `send`.
 * What needs a live server (PUBLISH counts, resubscribe on reconnect) is left to the e2e suite.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { RedisHub } from '../../src/realtime/backplane/redis-hub.js';
import type { Reply } from '../../src/realtime/backplane/resp.js';
import { Conn } from '../../src/realtime/conn.js';
import { LocalHub, type MembershipChange, type Outgoing } from '../../src/realtime/hub.js';
import { frames } from '../../src/realtime/protocol.js';
import { Registry } from '../../src/realtime/registry.js';

function setup(t: TestContext) {
  const registry = new Registry();
  const delivered: Array<[number, string]> = [];
  const changes: MembershipChange[] = [];
  const local = new LocalHub(registry, (c, text) => delivered.push([c.id, text]), async () => [], (err) => assert.fail(String(err)), (c) => changes.push(c));
  // Port 1 on loopback: nothing is listening, and nothing connects since start() is not called.
  const hub = new RedisHub('redis://127.0.0.1:1', local, registry, createLogger('silent'));
  const commands: string[][] = [];
  t.mock.method(hub['sub'], 'send', (...args: string[]) => (commands.push(args), false));
  t.after(() => hub.stop());
  /** A pub/sub push as the subscriber connection hands it over. */
  const push = (reply: Reply[]) => hub['pushed'](reply);
  return { registry, hub, delivered, commands, push, changes };
}

const conn = (id: number, userId: string) => new Conn(id, userId, '127.0.0.1', 0);

/** One message as the hub takes it: fire-and-forget (no offset), at time 0. */
const out = (topic: string, data: unknown, from: string | null = null): Outgoing => ({ topic, dataJson: JSON.stringify(data), from, offset: null, ts: 0 });
const msg = (topic: string, data: unknown, from: string | null = null) => frames.msgRaw(topic, JSON.stringify(data), from, null, 0);

test('a message from another instance reaches the local subscribers of its topic as the same text', (t) => {
  const { registry, hub, delivered, push } = setup(t);
  registry.subscribe(conn(1, 'a'), 'news');
  registry.subscribe(conn(2, 'b'), 'news');
  registry.subscribe(conn(3, 'c'), 'other');
  const text = msg('news', { n: 1 }, 'zed');
  push(['message', 'ob:t:news', `0123456789ab - ${text}`]);
  assert.deepEqual(delivered, [[1, text], [2, text]]);
  assert.equal(hub.stats.received, 1);
});

test("a message from another instance on a user's channel reaches every local connection of that user only", (t) => {
  const { registry, delivered, push } = setup(t);
  for (const c of [conn(1, 'alice'), conn(2, 'alice'), conn(3, 'bob')]) registry.addUser(c);
  const text = msg('user:alice', 'hi');
  push(['message', 'ob:u:alice', `0123456789ab - ${text}`]);
  assert.deepEqual(delivered.map(([id]) => id).sort(), [1, 2]);
});

test("this instance's own echo is dropped, uncounted", (t) => {
  const { registry, hub, delivered, push } = setup(t);
  registry.subscribe(conn(1, 'a'), 'news');
  push(['message', 'ob:t:news', `${hub.instanceId} - ${msg('news', 1)}`]);
  assert.deepEqual(delivered, []);
  assert.equal(hub.stats.received, 0);
});

test('pushes other than messages (subscribe confirmations) deliver nothing', (t) => {
  const { registry, hub, delivered, push } = setup(t);
  registry.subscribe(conn(1, 'a'), 'news');
  push(['subscribe', 'ob:t:news', 1]);
  push(['unsubscribe', 'ob:t:news', 0]);
  push(['message', 'ob:t:news', null]);
  assert.deepEqual(delivered, []);
  assert.equal(hub.stats.received, 0);
});

test("with Redis unreachable, publish to a topic and to a user's channel delivers locally, counts a publish error and answers the local count", async (t) => {
  const { registry, hub, delivered } = setup(t);
  registry.subscribe(conn(1, 'a'), 'news');
  registry.addUser(conn(2, 'bob'));
  assert.equal(await hub.publish(out('news', 'x', 'a')), 1);
  assert.equal(await hub.publish(out('user:bob', 'y')), 1);
  assert.deepEqual(delivered.map(([id]) => id), [1, 2]);
  assert.equal(hub.stats.publishErrors, 2);
  assert.equal(hub.stats.published, 0);
});

test('the first local interest in a topic or user subscribes its channel, the last unsubscribes it; stop ends that', async (t) => {
  const { registry, hub, commands } = setup(t);
  const a = conn(1, 'alice');
  const b = conn(2, 'alice');
  registry.addUser(a);
  registry.addUser(b);
  registry.subscribe(a, 'news');
  registry.subscribe(b, 'news');
  registry.unsubscribeAll(a);
  registry.unsubscribeAll(b);
  registry.removeUser(a);
  registry.removeUser(b);
  assert.deepEqual(commands, [
    ['SUBSCRIBE', 'ob:u:alice'],
    ['SUBSCRIBE', 'ob:t:news'],
    ['UNSUBSCRIBE', 'ob:t:news'],
    ['UNSUBSCRIBE', 'ob:u:alice'],
  ]);
  await hub.stop();
  registry.subscribe(a, 'later');
  assert.equal(commands.length, 4);
});

test("a membership change travels on the user's channel with `!`: applied here at once, and by the other instances that hold the user", async (t) => {
  const { hub, push, changes } = setup(t);
  const published: string[][] = [];
  t.mock.method(hub['pub'], 'call', (...args: string[]) => (published.push(args), Promise.resolve(1)));
  await hub.membership({ topic: 'room:1', userId: 'alice', member: false });
  assert.deepEqual(published, [['PUBLISH', 'ob:u:alice', `${hub.instanceId} ! {"topic":"room:1","member":false}`]]);
  assert.deepEqual(changes, [{ topic: 'room:1', userId: 'alice', member: false }]);
  push(['message', 'ob:u:alice', `${hub.instanceId} ! {"topic":"room:1","member":false}`]);
  assert.equal(changes.length, 1, 'our own echo is dropped');
  push(['message', 'ob:u:bob', '0123456789ab ! {"topic":"room:2","member":true}']);
  assert.deepEqual(changes[1], { topic: 'room:2', userId: 'bob', member: true });
  for (const bad of ['! {"topic":1}', '! not json', '! {"topic":"room:3"}']) push(['message', 'ob:u:bob', `0123456789ab ${bad}`]);
  push(['message', 'ob:t:room:1', '0123456789ab ! {"topic":"room:1","member":false}']);
  assert.equal(changes.length, 2, 'malformed control messages, or one on a topic channel, are ignored');
});
