/**
 * Presence over real sockets, per engine: join/leave per user, a reconnect within the grace;
 * then WORKERS=3 with Redis: counts agree across workers, and the users of a worker killed
 * with SIGKILL leave within the bound (short PRESENCE_TTL_MS and grace here).
 * `room:` topics have presence by default.
 */
import { DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, signup, startServer, type Running } from '../kit/server.js';
import { ClientPool, connectWs, type Client } from '../kit/ws.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { eventually } from '../kit/eventually.js';
import { clusterConnections } from '../kit/metrics.js';

/** Rooms open to any signed-in user, with presence as built in: access rules are channels.test.ts's. */
const OPEN_ROOMS = { room: { ...DEFAULT_NAMESPACES.room, subscribe: 'authenticated' } };

const GRACE_MS = 300;
const TTL_MS = 1500;
/** A crashed worker's users leave within 4/3 of the TTL plus the grace (plus a tick and a round trip). */
const CRASH_BOUND_MS = (TTL_MS * 4) / 3 + GRACE_MS + 1000;

/** Subscribe and wait for the ack. */
async function sub(c: Client, topic: string): Promise<void> {
  const id = `sub-${topic}-${Math.random()}`;
  c.send({ op: 'sub', topic, id });
  assert.equal((await c.next((f) => f.id === id)).op, 'ack');
}

/** The `presence` answer of a topic. */
async function ask(c: Client, topic: string): Promise<{ count: number; members: Array<{ user: string; conns: number }> }> {
  const id = `p-${Math.random()}`;
  c.send({ op: 'presence', topic, id });
  const f = await c.next((x) => x.id === id);
  assert.equal(f.op, 'ack', JSON.stringify(f));
  return f as never;
}

const isPresence = (topic: string, key: 'join' | 'leave', user: string) => (f: Record<string, unknown>) =>
  f.op === 'presence' && f.topic === topic && f[key] === user;

for (const engine of ENGINES) {
  describe(`presence on ${engine}`, () => {
    let s: Running;
    const pool = new ClientPool(() => s.wsUrl);
    const open = (token: string) => pool.open(token);
    before(async () => {
      s = await startServer(engine, { PING_INTERVAL_MS: '1000', PRESENCE_GRACE_MS: String(GRACE_MS) }, OPEN_ROOMS);
    });
    after(async () => {
      pool.closeAll();
      await s.stop();
    });

    test('join on a user\'s first connection, the members answer, leave after the grace once the last is gone', async () => {
      const alice = await signup(s.url, 'alice');
      const bob = await signup(s.url, 'bob');
      const a = await open(alice.token);
      await sub(a, 'room:p1');
      const b = await open(bob.token);
      await sub(b, 'room:p1');
      await a.next(isPresence('room:p1', 'join', bob.id));
      const answer = await ask(b, 'room:p1');
      assert.equal(answer.count, 2);
      assert.deepEqual(answer.members.map((m) => m.user).sort(), [alice.id, bob.id].sort());
      const gone = performance.now();
      b.close();
      await a.next(isPresence('room:p1', 'leave', bob.id));
      assert.ok(performance.now() - gone >= GRACE_MS - 50, 'not before the grace period');
      assert.equal((await ask(a, 'room:p1')).count, 1);
    });

    test('a reconnect within the grace produces neither leave nor join', async () => {
      const alice = await signup(s.url, 'alice');
      const bob = await signup(s.url, 'bob');
      const a = await open(alice.token);
      await sub(a, 'room:p2');
      const phone = await open(bob.token);
      await sub(phone, 'room:p2');
      await a.next(isPresence('room:p2', 'join', bob.id));
      phone.close();
      const back = await open(bob.token);
      await sub(back, 'room:p2');
      await new Promise((r) => setTimeout(r, GRACE_MS * 3)); // the absence of an event, over three graces
      await a.sync();
      assert.deepEqual(a.frames.filter((f) => f.op === 'presence'), []);
      assert.deepEqual((await ask(a, 'room:p2')).members.find((m) => m.user === bob.id), { user: bob.id, conns: 1 });
    });
  });

  describe(`presence across WORKERS=3 with Redis on ${engine}`, () => {
    let redis: RedisServer;
    let s: Running;
    const clients: Client[] = [];
    before(async () => {
      redis = await startRedis();
      s = await startServer(engine, {
        WORKERS: '3',
        REDIS_URL: redis.url,
        PING_INTERVAL_MS: '1000',
        PRESENCE_GRACE_MS: String(GRACE_MS),
        PRESENCE_TTL_MS: String(TTL_MS),
      }, OPEN_ROOMS);
    });
    after(async () => {
      for (const c of clients) c.close();
      await s.stop();
      await redis.stop();
    });

    test('counts agree across workers; a worker killed with SIGKILL: its users leave within the bound', async (t) => {
      const users = [];
      for (let i = 0; i < 12; i++) users.push(await signup(s.url, `p${i}`));
      for (const u of users) {
        const c = await connectWs(s.wsUrl, u.token);
        clients.push(c);
        await sub(c, 'room:c');
      }
      await eventually(async () => {
        const t = await clusterConnections(s.url);
        return [...t.values()].filter((w) => w.n > 0).length >= 2 && [...t.values()].reduce((a, w) => a + w.n, 0) === 12;
      }, { what: 'the 12 connections to be counted, spread over at least two workers' });
      await eventually(async () => {
        for (const c of clients) if ((await ask(c, 'room:c')).count !== 12) return false;
        return true;
      }, { what: 'every connection, whatever its worker, to count 12 members of room:c' });

      const table = await clusterConnections(s.url);
      const victim = [...table.values()].find((w) => w.n > 0 && w.n < 12)!;
      const killed = performance.now();
      process.kill(victim.pid, 'SIGKILL');
      const isClosed = (c: Client) => c.ws.readyState === c.ws.CLOSED;
      await eventually(() => clients.filter(isClosed).length === victim.n, { what: `the ${victim.n} connections of the killed worker to close` });
      const closed = clients.map(isClosed);
      const dead = users.filter((_, i) => closed[i]);
      const alive = clients.filter((_, i) => !closed[i]);
      assert.equal(dead.length, victim.n, 'the killed worker\'s connections closed');
      for (const c of alive) {
        for (const u of dead) await c.next(isPresence('room:c', 'leave', u.id), CRASH_BOUND_MS);
      }
      const took = performance.now() - killed;
      assert.ok(took < CRASH_BOUND_MS, `left within ${Math.round(took)} ms`);
      t.diagnostic(`${dead.length} users of the killed worker left ${Math.round(took)} ms after the kill (bound ${CRASH_BOUND_MS} ms)`);
      for (const c of alive) assert.equal((await ask(c, 'room:c')).count, alive.length);
    });
  });
}
