/**
 * Namespace rules (issue 14): the one channel configuration, and the gateway enforcing it
 * over the fake transport: unknown namespaces, `own` / `authenticated` / `members` reads,
 * subscription tokens, publish rules and rates per namespace, and a removed member losing
 * their live subscriptions at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { LocalLimits } from '../../src/lib/local-limits.js';
import { createLogger } from '../../src/observability/logger.js';
import { Channels, DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import type { Conn } from '../../src/realtime/conn.js';
import { Gateway, type GatewayDeps, type SubTokenCheck } from '../../src/realtime/gateway.js';
import { FakeSocketOps, framesOf, lastFrame, type FakeSocket } from '../kit/fake-socket.js';

// --- configuration ----------------------------------------------------------------------------

test('the built-in namespaces are exactly user, public, room and bench, with the rules issue 14 lists', () => {
  const c = new Channels();
  const row = (topic: string) => {
    const r = c.rules(topic)!;
    return [r.subscribe, r.publish, r.history.size, r.history.ttlS, r.recover, r.presence];
  };
  assert.deepEqual(row('user:u1'), ['own', 'none', 500, 72 * 3600, true, false]);
  assert.deepEqual(row('public:news'), ['authenticated', 'none', 100, 600, true, false]);
  assert.deepEqual(row('room:1'), ['members', 'members', 100, 3600, true, true]);
  assert.deepEqual(row('bench:all'), ['authenticated', 'none', 0, 0, false, false]);
  assert.deepEqual(Object.keys(DEFAULT_NAMESPACES).sort(), ['bench', 'public', 'room', 'user']);
  for (const topic of ['news', 'chat:1', 'users:1', 'roomx:1']) assert.equal(c.rules(topic), undefined, topic);
});

/** Write a CHANNELS_FILE and load it. */
function loadFile(t: TestContext, text: string): Channels {
  const dir = mkdtempSync(join(tmpdir(), 'onebox-channels-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'channels.json');
  writeFileSync(file, text);
  return Channels.load(file);
}

test('a CHANNELS_FILE replaces the built-ins as a whole; a topic without ":" is namespace "" only when configured', (t) => {
  const c = loadFile(t, JSON.stringify({ namespaces: { user: { subscribe: 'own' }, '': { subscribe: 'authenticated', publish: 'authenticated', publishPerS: 3 } } }));
  assert.equal(c.rules('room:1'), undefined, 'room is gone with the built-ins');
  assert.deepEqual(c.rules('plain'), { subscribe: 'authenticated', publish: 'authenticated', publishPerS: 3, history: { size: 0, ttlS: 0 }, recover: true, presence: false });
  assert.equal(c.rules('user:u')!.publishPerS, undefined, 'defaults to WS_PUBLISH_PER_S');
});

test('a bad CHANNELS_FILE stops the boot with a ConfigError naming CHANNELS_FILE and the field', (t) => {
  const bad: Array<[string, RegExp]> = [
    ['{not json', /CHANNELS_FILE/],
    [JSON.stringify({ namespaces: { room: { subscribe: 'members' } } }), /CHANNELS_FILE.*namespaces.*"user" is required/],
    [JSON.stringify({ namespaces: { user: { subscribe: 'authenticated' } } }), /CHANNELS_FILE.*namespaces\.user\.subscribe/],
    [JSON.stringify({ namespaces: { user: { subscribe: 'own' }, room: { subscribe: 'everyone' } } }), /CHANNELS_FILE.*namespaces\.room\.subscribe/],
    [JSON.stringify({ namespaces: { user: { subscribe: 'own' }, room: { subscribe: 'members', publish: 'all' } } }), /namespaces\.room\.publish/],
    [JSON.stringify({ namespaces: { user: { subscribe: 'own' }, 'a:b': { subscribe: 'own' } } }), /namespaces\.a:b/],
    [JSON.stringify({ namespaces: { user: { subscribe: 'own', presence: 'on' } } }), /namespaces\.user\.presence/],
    [JSON.stringify({ namespaces: { user: { subscribe: 'own' } }, extra: 1 }), /CHANNELS_FILE/],
  ];
  for (const [text, message] of bad) assert.throws(() => loadFile(t, text), (err) => err instanceof ConfigError && message.test(err.message), text);
  assert.throws(() => Channels.load('/nonexistent/channels.json'), (err) => err instanceof ConfigError && /CHANNELS_FILE/.test(err.message));
});

test('WS_PUBLISH_PREFIXES set stops the boot, pointing at CHANNELS_FILE; WS_PUBLISH_PER_S stays', () => {
  assert.throws(() => loadConfig({ WS_PUBLISH_PREFIXES: 'room:' }), (err) => err instanceof ConfigError && /WS_PUBLISH_PREFIXES.*CHANNELS_FILE/.test(err.message));
  assert.equal(loadConfig({ WS_PUBLISH_PER_S: '7' }).wsPublishPerS, 7);
});

// --- the gateway enforcing them ------------------------------------------------------------------

const T0 = 1_700_000_000_000;

const CHANNELS = new Channels({
  ...DEFAULT_NAMESPACES,
  chat: { subscribe: 'authenticated', publish: 'authenticated' },
  slow: { subscribe: 'authenticated', publish: 'authenticated', publishPerS: 1 },
  inbox: { subscribe: 'own' },
});

function setup(t: TestContext, deps: Partial<GatewayDeps> = {}) {
  t.mock.timers.enable({ apis: ['Date', 'setInterval', 'setTimeout'], now: T0 });
  const ops = new FakeSocketOps();
  /** Members by topic; `lookups` counts the store queries. */
  const members = new Map<string, Set<string>>([['room:1', new Set(['alice'])]]);
  const store = { lookups: 0 };
  const gw = new Gateway(
    { maxConnections: 100, maxHandshakes: 100, maxConnectionsPerIp: undefined, trustProxy: { kind: 'off' }, pingIntervalMs: 1000, idleTimeoutMs: 1e9, maxBufferedBytes: 1 << 20, maxSubscriptions: 10, maxJsonDepth: 8, wsPublishPerS: 5 },
    {
      authenticate: (req) => Promise.resolve({ ok: true, userId: req.authorization! }),
      limits: new LocalLimits(),
      log: createLogger('silent'),
      channels: CHANNELS,
      members: (topic, userId) => (store.lookups++, Promise.resolve(members.get(topic)?.has(userId) ?? false)),
      ...deps,
    },
  );
  gw.attach(ops);
  t.after(() => gw.stop());
  const connect = async (userId: string): Promise<{ conn: Conn; sock: FakeSocket }> => {
    const d = await gw.authorize({ url: '/v1/ws', authorization: userId, ip: '192.0.2.1', version: '13', key: 'dGhlIHNhbXBsZSBub25jZQ==', forwarded: undefined });
    assert.ok(d.ok);
    const sock = ops.socket();
    gw.open(d.conn, sock);
    return { conn: d.conn, sock };
  };
  const send = (conn: Conn, frame: unknown) => gw.message(conn, JSON.stringify(frame), false);
  /** Let promise callbacks (lookups, token checks) run. */
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  /** The answer to frame `id`: `ack` or the error code. */
  const answer = (sock: FakeSocket, id: unknown) => {
    const f = framesOf(sock).findLast((x) => x.id === id);
    return f === undefined ? undefined : f.op === 'ack' ? 'ack' : String(f.code);
  };
  return { gw, members, store, connect, send, settle, answer };
}

test('a topic in an unknown namespace is unknown_namespace on sub, history and pub, including one without ":"; a recv for it is dropped', async (t) => {
  const { gw, connect, send, answer } = setup(t);
  const { conn, sock } = await connect('alice');
  send(conn, { op: 'sub', topic: 'news', id: 1 });
  send(conn, { op: 'sub', topic: 'rooms:1', id: 2 });
  send(conn, { op: 'history', topic: 'nope:1', id: 3, since: { offset: 0, epoch: 'e' } });
  send(conn, { op: 'pub', topic: 'nope:1', id: 4, data: 1 });
  send(conn, { op: 'recv', topic: 'nope:1', offset: 1 });
  assert.deepEqual([1, 2, 3, 4].map((id) => answer(sock, id)), Array(4).fill('unknown_namespace'));
  assert.equal(sock.sent.length, 4, 'no answer to the recv');
  assert.equal(gw.registry.topics.size, 0);
});

test('own: only <namespace>:<your id>, in any own namespace', async (t) => {
  const { connect, send, answer } = setup(t);
  const { conn, sock } = await connect('alice');
  send(conn, { op: 'sub', topic: 'inbox:alice', id: 1 });
  send(conn, { op: 'sub', topic: 'inbox:bob', id: 2 });
  send(conn, { op: 'sub', topic: 'inbox:alicex', id: 3 });
  send(conn, { op: 'sub', topic: 'user:bob', id: 4 });
  assert.deepEqual([1, 2, 3, 4].map((id) => answer(sock, id)), ['ack', 'forbidden_topic', 'forbidden_topic', 'forbidden_topic']);
});

test('members: refused without membership or token, accepted with a membership, which is then asked of the store once', async (t) => {
  const { gw, store, connect, send, settle, answer } = setup(t);
  const alice = await connect('alice');
  const bob = await connect('bob');
  send(bob.conn, { op: 'sub', topic: 'room:1', id: 1 });
  send(alice.conn, { op: 'sub', topic: 'room:1', id: 2 });
  await settle();
  assert.equal(answer(bob.sock, 1), 'forbidden_topic');
  assert.equal(answer(alice.sock, 2), 'ack');
  assert.deepEqual([...gw.registry.topics.get('room:1')!].map((c) => c.userId), ['alice']);
  send(alice.conn, { op: 'unsub', topic: 'room:1' });
  send(alice.conn, { op: 'sub', topic: 'room:1', id: 3 });
  assert.equal(answer(alice.sock, 3), 'ack', 'answered at once from the cache');
  assert.equal(store.lookups, 2, 'one lookup per user');
});

test('members: a subscription token decides when given, for this user and topic only', async (t) => {
  const calls: Array<[string, string, string]> = [];
  const verifySubToken: SubTokenCheck = (token, userId, topic) => {
    calls.push([token, userId, topic]);
    return Promise.resolve(token === 'good' ? null : token === 'old' ? 'subscription_token_expired' : 'invalid_subscription_token');
  };
  const { store, connect, send, settle, answer } = setup(t, { verifySubToken });
  const bob = await connect('bob');
  send(bob.conn, { op: 'sub', topic: 'room:1', id: 1, token: 'good' });
  send(bob.conn, { op: 'sub', topic: 'room:2', id: 2, token: 'old' });
  send(bob.conn, { op: 'sub', topic: 'room:3', id: 3, token: 'forged' });
  send(bob.conn, { op: 'history', topic: 'room:1', id: 4, token: 'forged', since: { offset: 0, epoch: 'e' } });
  send(bob.conn, { op: 'sub', topic: 'public:news', id: 5, token: 'forged' });
  send(bob.conn, { op: 'sub', topic: 'room:4', id: 6, token: '' });
  await settle();
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((id) => answer(bob.sock, id)), ['ack', 'subscription_token_expired', 'invalid_subscription_token', 'invalid_subscription_token', 'ack', 'bad_frame']);
  assert.deepEqual(calls[0], ['good', 'bob', 'room:1'], 'checked against the connection’s user and the frame’s topic');
  assert.equal(calls.length, 4, 'a token outside a members namespace is not looked at');
  assert.equal(store.lookups, 0, 'a token spares the membership lookup');
  const alice = await connect('alice');
  send(alice.conn, { op: 'sub', topic: 'room:1', id: 7, token: 'forged' });
  await settle();
  assert.equal(answer(alice.sock, 7), 'invalid_subscription_token', 'a bad token is refused even for a member');
});

test('a membership removal unsubscribes every connection of that user from that topic at once, with membership_revoked', async (t) => {
  const { gw, members, connect, send, settle } = setup(t, { verifySubToken: () => Promise.resolve(null) });
  const a1 = await connect('alice');
  const a2 = await connect('alice');
  const carol = await connect('carol');
  members.get('room:1')!.add('carol');
  for (const c of [a1, a2, carol]) send(c.conn, { op: 'sub', topic: 'room:1' });
  send(a1.conn, { op: 'sub', topic: 'room:2', token: 'granted' });
  send(a1.conn, { op: 'sub', topic: 'public:news' });
  await settle();
  members.get('room:1')!.delete('alice');
  await gw.hub.membership({ topic: 'room:1', userId: 'alice', member: false });
  for (const a of [a1, a2]) assert.deepEqual(lastFrame(a.sock), { op: 'error', code: 'membership_revoked', message: 'no longer a member of this topic', topic: 'room:1' });
  await gw.hub.publish({ topic: 'room:1', dataJson: '"after"', from: null, offset: null, ts: 0 });
  assert.equal(lastFrame(a1.sock)?.code, 'membership_revoked', 'nothing of the topic after the revocation');
  assert.equal(lastFrame(carol.sock)?.data, 'after', 'other members keep it');
  assert.deepEqual([...(a1.conn.topics as Set<string>)].sort(), ['public:news', 'room:2'], 'other topics kept');
  send(a2.conn, { op: 'sub', topic: 'room:1', id: 'again' });
  await settle();
  assert.equal(lastFrame(a2.sock)?.code, 'forbidden_topic', 'the cached membership was dropped');
});

test('a removal that lands while a subscription waits for its membership lookup still ends it once it has joined', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const { gw, members, connect, send, settle } = setup(t, {
    members: async (topic, userId) => {
      const answer = members.get(topic)?.has(userId) ?? false; // read before the removal
      await gate;
      return answer;
    },
  });
  const a = await connect('alice');
  send(a.conn, { op: 'sub', topic: 'room:1', id: 's' });
  members.get('room:1')!.delete('alice');
  await gw.hub.membership({ topic: 'room:1', userId: 'alice', member: false });
  release();
  await settle();
  await settle();
  assert.equal(gw.registry.topics.has('room:1'), false);
  assert.deepEqual(framesOf(a.sock).map((f) => f.code ?? f.op), ['ack', 'membership_revoked']);
});

test('publish rules per namespace: none, authenticated, members (a member, or a connection holding the topic)', async (t) => {
  const { connect, send, settle, answer } = setup(t, { verifySubToken: () => Promise.resolve(null) });
  const alice = await connect('alice');
  const bob = await connect('bob');
  const carol = await connect('carol');
  send(carol.conn, { op: 'sub', topic: 'room:1', token: 'granted' });
  await settle();
  send(alice.conn, { op: 'pub', topic: 'public:news', id: 1 });
  send(alice.conn, { op: 'pub', topic: 'user:alice', id: 2 });
  send(alice.conn, { op: 'pub', topic: 'bench:all', id: 3 });
  send(alice.conn, { op: 'pub', topic: 'chat:1', id: 4 });
  send(alice.conn, { op: 'pub', topic: 'room:1', id: 5 });
  send(bob.conn, { op: 'pub', topic: 'room:1', id: 6 });
  send(carol.conn, { op: 'pub', topic: 'room:1', id: 7 });
  await settle();
  assert.deepEqual([1, 2, 3, 4, 5].map((id) => answer(alice.sock, id)), ['publish_forbidden', 'publish_forbidden', 'publish_forbidden', 'ack', 'ack']);
  assert.equal(answer(bob.sock, 6), 'publish_forbidden');
  assert.equal(answer(carol.sock, 7), 'ack');
});

test("publish rate per connection and namespace: a namespace's publishPerS, others WS_PUBLISH_PER_S, each with its own burst", async (t) => {
  const { connect, send, answer } = setup(t);
  const { conn, sock } = await connect('alice');
  const burst = (topic: string, n: number) =>
    Array.from({ length: n }, (_, i) => {
      send(conn, { op: 'pub', topic, id: `${topic}-${i}` });
      return answer(sock, `${topic}-${i}`);
    });
  assert.deepEqual(burst('slow:1', 3), ['ack', 'ack', 'rate_limited'], 'publishPerS 1: a burst of 2');
  assert.deepEqual(burst('chat:1', 11), [...Array(10).fill('ack'), 'rate_limited'], 'WS_PUBLISH_PER_S 5: a burst of 10, untouched by slow:');
  t.mock.timers.tick(1000);
  assert.deepEqual(burst('slow:2', 2), ['ack', 'rate_limited'], 'one a second; per namespace, not per topic');
  assert.deepEqual(burst('chat:2', 6), [...Array(5).fill('ack'), 'rate_limited']);
});
