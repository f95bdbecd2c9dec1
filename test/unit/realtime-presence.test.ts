/**
 * Presence through the gateway on the fake transport and the mock clock: join/leave per user,
 * the grace period, count mode above PRESENCE_EVENTS_MAX, the bounded `presence` answer, and
 * the merge of another process's members (a PresenceSync driven by hand).
 */
import { Channels, DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { LocalLimits } from '../../src/lib/local-limits.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Conn } from '../../src/realtime/conn.js';
import { Gateway, type Authentication, type GatewayDeps, type UpgradeRequest } from '../../src/realtime/gateway.js';
import type { PresenceSync } from '../../src/realtime/presence.js';
import { FakeSocketOps, framesOf, gatewayOptions, type FakeSocket } from '../kit/fake-socket.js';

const T0 = 1_700_000_000_000;
/** 1000 ms over 40 buckets: the heartbeat ticks every 25 ms. */
const TICK_MS = 25;
const GRACE_MS = 500;

const OPTIONS = gatewayOptions({ maxConnections: 10_000, idleTimeoutMs: 60_000, maxBufferedBytes: 1 << 20, maxSubscriptions: 10 });

const admit = (req: UpgradeRequest): Promise<Authentication> => Promise.resolve({ ok: true, userId: req.authorization! });

function setup(t: TestContext, presence: GatewayDeps['presence'] = {}) {
  t.mock.timers.enable({ apis: ['Date', 'setInterval', 'setTimeout'], now: T0 });
  const ops = new FakeSocketOps();
  const gw = new Gateway(OPTIONS, {
    authenticate: admit,
    limits: new LocalLimits(),
    log: createLogger('silent'),
    // Rooms open to any signed-in user: access rules are channels.test.ts's.
    channels: new Channels({ ...DEFAULT_NAMESPACES, room: { ...DEFAULT_NAMESPACES.room, subscribe: 'authenticated' } }),
    presence: { graceMs: GRACE_MS, ...presence },
  });
  gw.attach(ops);
  t.after(() => gw.stop());

  /** Open a connection for userId and subscribe it to topics. */
  async function join(userId: string, ...topics: string[]): Promise<{ conn: Conn; sock: FakeSocket }> {
    const d = await gw.authorize({ url: '/v1/ws', authorization: userId, ip: '192.0.2.1', version: '13', key: 'dGhlIHNhbXBsZSBub25jZQ==', forwarded: undefined });
    assert.ok(d.ok);
    const sock = ops.socket();
    gw.open(d.conn, sock);
    for (const topic of topics) send(d.conn, { op: 'sub', topic });
    return { conn: d.conn, sock };
  }
  const send = (conn: Conn, frame: unknown) => gw.message(conn, JSON.stringify(frame), false);
  /** Close a connection as the engine reports it. */
  const drop = (c: { conn: Conn }) => gw.closed(c.conn, 1006);
  const advance = (ms: number) => {
    for (let left = ms; left > 0; left -= TICK_MS) t.mock.timers.tick(Math.min(TICK_MS, left));
  };
  return { gw, join, send, drop, advance };
}

/** The presence events a socket got. */
const events = (sock: FakeSocket) => framesOf(sock).filter((f) => f.op === 'presence');

test('join when a user\'s first connection arrives, leave when the last is gone past the grace; never told of itself', async (t) => {
  const { join, send, drop, advance } = setup(t);
  const alice = await join('alice', 'room:1');
  const bob1 = await join('bob', 'room:1');
  assert.deepEqual(events(alice.sock), [{ op: 'presence', topic: 'room:1', join: 'bob' }]);
  assert.deepEqual(events(bob1.sock), [], 'a connection is not told of its own arrival');
  const bob2 = await join('bob', 'room:1');
  drop(bob1);
  advance(GRACE_MS * 2);
  assert.equal(events(alice.sock).length, 1, 'a second connection of a present user, and its first leaving: no event');
  assert.deepEqual(events(bob2.sock), []);

  send(bob2.conn, { op: 'unsub', topic: 'room:1' });
  advance(GRACE_MS - TICK_MS);
  assert.equal(events(alice.sock).length, 1, 'still within the grace');
  advance(2 * TICK_MS);
  assert.deepEqual(events(alice.sock).at(-1), { op: 'presence', topic: 'room:1', leave: 'bob' });
  // Other topics and namespaces without presence stay silent.
  await join('carol', 'bench:1', 'room:2');
  assert.equal(events(alice.sock).length, 2);
});

test('a reconnect within the grace produces neither leave nor join; after the grace, a leave', async (t) => {
  const { join, drop, advance } = setup(t);
  const alice = await join('alice', 'room:1');
  const phone = await join('bob', 'room:1');
  assert.equal(events(alice.sock).length, 1);
  drop(phone);
  advance(GRACE_MS - 100);
  const again = await join('bob', 'room:1');
  advance(GRACE_MS * 3);
  assert.equal(events(alice.sock).length, 1, 'no leave, no second join');
  drop(again);
  advance(GRACE_MS + TICK_MS);
  assert.deepEqual(events(alice.sock).at(-1), { op: 'presence', topic: 'room:1', leave: 'bob' });
});

test('above PRESENCE_EVENTS_MAX members a topic sends a count at most once a second instead of per-user events', async (t) => {
  const { join, drop, advance } = setup(t, { eventsMax: 3 });
  const watcher = await join('watcher', 'room:1');
  await join('u1', 'room:1');
  await join('u2', 'room:1');
  assert.equal(events(watcher.sock).length, 2, 'per-user events up to the bound');
  const storm = [];
  for (let i = 3; i < 50; i++) storm.push(await join(`u${i}`, 'room:1'));
  assert.equal(events(watcher.sock).length, 2, 'no per-user event above the bound');
  advance(TICK_MS);
  assert.deepEqual(events(watcher.sock).at(-1), { op: 'presence', topic: 'room:1', count: 50 });
  for (let i = 50; i < 60; i++) await join(`u${i}`, 'room:1');
  advance(900);
  assert.equal(events(watcher.sock).length, 3, 'at most one count a second');
  advance(150);
  assert.deepEqual(events(watcher.sock).at(-1), { op: 'presence', topic: 'room:1', count: 60 });
  advance(3000);
  assert.equal(events(watcher.sock).length, 4, 'no change, no count');
  // Back to the bound: one last count, then per-user events again.
  for (const c of storm) drop(c);
  advance(GRACE_MS + 1100);
  assert.deepEqual(events(watcher.sock).at(-1), { op: 'presence', topic: 'room:1', count: 13 });
  const n = events(watcher.sock).length;
  await join('late', 'room:1');
  advance(1100);
  assert.equal(events(watcher.sock).length, n + 1);
  assert.equal(events(watcher.sock).at(-1)!.count, 14);
});

test('the presence answer lists members with their connections, bounded to a first page of 100 with the count', async (t) => {
  const { join, send } = setup(t);
  const alice = await join('alice', 'room:1', 'bench:1');
  await join('alice', 'room:1');
  send(alice.conn, { op: 'presence', id: 9, topic: 'room:1' });
  assert.deepEqual(framesOf(alice.sock).at(-1), {
    op: 'ack', id: 9, ack: 'presence', topic: 'room:1', count: 1, members: [{ user: 'alice', conns: 2 }], more: false,
  });
  for (let i = 0; i < 150; i++) await join(`u${i}`, 'room:1');
  send(alice.conn, { op: 'presence', id: 10, topic: 'room:1' });
  const big = framesOf(alice.sock).at(-1)!;
  assert.equal(big.count, 151);
  assert.equal((big.members as unknown[]).length, 100);
  assert.equal(big.more, true);

  send(alice.conn, { op: 'presence', id: 11, topic: 'room:2' });
  assert.deepEqual([framesOf(alice.sock).at(-1)!.code, framesOf(alice.sock).at(-1)!.id], ['not_subscribed', 11]);
  send(alice.conn, { op: 'presence', id: 12, topic: 'bench:1' });
  assert.deepEqual([framesOf(alice.sock).at(-1)!.code, framesOf(alice.sock).at(-1)!.id], ['no_presence', 12]);
  send(alice.conn, { op: 'presence', id: 13 });
  assert.equal(framesOf(alice.sock).at(-1)!.code, 'invalid_topic');
});

test('another process\'s members merge per user: its joins and leaves count, its initial members are silent, the grace applies', async (t) => {
  const said: Array<[string, string, number]> = [];
  let presence!: Parameters<NonNullable<NonNullable<GatewayDeps['presence']>['createSync']>>[0];
  const sync: PresenceSync = {
    track: () => undefined,
    untrack: () => undefined,
    local: (topic, user, n) => void said.push([topic, user, n]),
    loaded: () => null,
  };
  const { gw, join, drop, advance } = setup(t, { createSync: (p) => ((presence = p), sync) });
  const alice = await join('alice', 'room:1');
  presence.remote('room:1', 'old', 1, true);
  assert.deepEqual(events(alice.sock), [], 'members loaded when tracking starts are no news');
  presence.remote('room:1', 'bob', 1);
  assert.deepEqual(events(alice.sock), [{ op: 'presence', topic: 'room:1', join: 'bob' }]);
  const here = await join('bob', 'room:1');
  assert.equal(events(alice.sock).length, 1, 'bob is present already (elsewhere)');
  assert.deepEqual(said, [['room:1', 'alice', 1], ['room:1', 'bob', 1]], 'this process announces its own counts');
  presence.remote('room:1', 'bob', -1);
  drop(here);
  advance(GRACE_MS - 100);
  presence.remote('room:1', 'bob', 1); // the phone came back on another process
  advance(GRACE_MS * 2);
  assert.equal(events(alice.sock).length, 1);
  presence.remote('room:1', 'bob', -1);
  advance(GRACE_MS + TICK_MS);
  assert.deepEqual(events(alice.sock).at(-1), { op: 'presence', topic: 'room:1', leave: 'bob' });
  assert.deepEqual(gw.presence.members('room:1'), { count: 2, members: [{ user: 'alice', conns: 1 }, { user: 'old', conns: 1 }], more: false });
});
