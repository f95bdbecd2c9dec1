import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, CHAT_NAMESPACE, ENGINES, signup, startServer, type Running } from '../kit/server.js';
import { connectWs, type Client } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { createTestDatabase } from '../kit/pg.js';
import { clusterConnections, metric } from '../kit/metrics.js';

const admin = { token: ADMIN_TOKEN };

for (const engine of ENGINES) {
  describe(`WORKERS=3 with Redis on ${engine}`, () => {
    let redis: RedisServer;
    let s: Running;
    const clients: Client[] = [];
    before(async () => {
      redis = await startRedis();
      s = await startServer(engine, { WORKERS: '3', REDIS_URL: redis.url }, CHAT_NAMESPACE);
    });
    after(async () => {
      for (const c of clients) c.close();
      await s.stop();
      await redis.stop();
    });

    test('notify and topic messages reach connections on every worker', async () => {
      const alice = await signup(s.url);
      const bob = await signup(s.url);
      for (let i = 0; i < 9; i++) clients.push(await connectWs(s.wsUrl, alice.token));
      const bobs = [];
      for (let i = 0; i < 9; i++) bobs.push(await connectWs(s.wsUrl, bob.token));
      clients.push(...bobs);
      // The kernel (Bun) or the primary (Node) spreads them: wait until at least two workers hold some.
      await eventually(async () => {
        const t = await clusterConnections(s.url);
        const total = [...t.values()].reduce((a, w) => a + w.n, 0);
        return t.size === 3 && total === 18 && [...t.values()].filter((w) => w.n > 0).length >= 2;
      }, { what: 'the cluster table to count all 18 connections, spread over at least two of 3 workers' });
      const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: alice.id, title: 'everywhere' } });
      assert.equal(r.status, 202);
      assert.ok(r.body.live >= 1);
      assert.equal(r.body.queued, 0);
      for (const c of clients.slice(0, 9)) {
        const m = await c.next((f) => f.op === 'msg');
        assert.deepEqual([m.data.title, m.topic, m.offset], ['everywhere', `user:${alice.id}`, r.body.offset]);
      }
      for (const b of bobs) {
        b.send({ op: 'sub', topic: 'chat:x', id: 's' });
        await b.next((f) => f.id === 's');
      }
      const pub = clients[0]!;
      pub.send({ op: 'pub', topic: 'chat:x', data: 'hello', id: 'p' });
      for (const b of bobs) assert.equal((await b.next((f) => f.op === 'msg')).data, 'hello');
    });

    test('a durable topic published from every worker reaches each subscriber in offset order, no gap or repeat', async () => {
      const u = await signup(s.url);
      const topic = `chat:order-${Date.now()}`;
      const subs: Client[] = [];
      const pubs: Client[] = [];
      for (let i = 0; i < 6; i++) subs.push(await connectWs(s.wsUrl, u.token));
      for (let i = 0; i < 6; i++) pubs.push(await connectWs(s.wsUrl, u.token));
      clients.push(...subs, ...pubs);
      await eventually(
        async () => {
          const t = await clusterConnections(s.url);
          return [...t.values()].filter((w) => w.n > 0).length >= 2;
        },
        { what: 'connections on at least two workers' },
      );
      const seen: number[][] = subs.map(() => []);
      subs.forEach((c, i) => c.ws.on('message', (d) => {
        const f = JSON.parse(d.toString());
        if (f.op === 'msg' && f.topic === topic) seen[i]!.push(f.offset);
      }));
      for (const c of subs) {
        c.send({ op: 'sub', topic, id: 'o' });
        assert.equal((await c.next((f) => f.id === 'o')).offset, 0);
      }
      // 6 publishers x 15 (within the default burst of 20), all at once: offsets cross on Redis.
      for (let n = 0; n < 15; n++) for (const p of pubs) p.send({ op: 'pub', topic, data: n, id: `p${n}` });
      const acked = (await Promise.all(pubs.flatMap((p) => Array.from({ length: 15 }, (_, n) => p.next((f) => f.id === `p${n}`))))).map((a) => a.offset);
      assert.deepEqual(acked.sort((a, b) => a - b), Array.from({ length: 90 }, (_, i) => i + 1));
      await eventually(() => seen.every((o) => o.length >= 90), { what: 'every subscriber to get 90 messages' });
      pubs[0]!.send({ op: 'pub', topic, data: 'last', id: 'last' });
      await eventually(() => seen.every((o) => o.includes(91)), { what: 'the last message everywhere' });
      for (const o of seen) assert.deepEqual(o, Array.from({ length: 91 }, (_, i) => i + 1));
    });

    test('a killed worker is replaced', async () => {
      const before = await clusterConnections(s.url);
      const victim = before.get('1')!.pid;
      process.kill(victim, 'SIGKILL');
      await eventually(async () => {
        const t = await clusterConnections(s.url);
        return t.size === 3 && t.get('1') && t.get('1')!.pid !== victim;
        // A fresh Node worker takes a few seconds to boot on a loaded 2-core box.
      }, { timeoutMs: 30_000, what: `worker 1 (pid ${victim}, killed) to be replaced by a new process` });
      assert.match((await api(s.url, 'GET', '/metrics')).body as string, /onebox_cluster_worker_restarts_total\{worker="1",pid="\d+"\} 1/);
      assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);
    });
  });

  describe(`membership removal with WORKERS=3 and Redis on ${engine}`, () => {
    let redis: RedisServer;
    let s: Running;
    const clients: Client[] = [];
    before(async () => {
      redis = await startRedis();
      s = await startServer(engine, { WORKERS: '3', REDIS_URL: redis.url });
    });
    after(async () => {
      for (const c of clients) c.close();
      await s.stop();
      await redis.stop();
    });

    test("removing a member ends that user's live subscriptions on every worker within one second", async () => {
      const dave = await signup(s.url);
      const daves: Client[] = [];
      for (let i = 0; i < 6; i++) daves.push(await connectWs(s.wsUrl, dave.token));
      clients.push(...daves);
      await eventually(async () => {
        const t = await clusterConnections(s.url);
        return [...t.values()].reduce((a, w) => a + w.n, 0) === 6 && [...t.values()].filter((w) => w.n > 0).length >= 2;
      }, { what: 'the cluster table to count all 6 connections, on at least two of 3 workers' });
      assert.equal((await api(s.url, 'PUT', `/v1/topics/room:c/members/${dave.id}`, admin)).status, 201);
      for (const d of daves) {
        d.send({ op: 'sub', topic: 'room:c', id: 's' });
        assert.equal((await d.next((f) => f.id === 's')).op, 'ack');
      }
      const t0 = performance.now();
      assert.equal((await api(s.url, 'DELETE', `/v1/topics/room:c/members/${dave.id}`, admin)).status, 204);
      for (const d of daves) assert.equal((await d.next((f) => f.code === 'membership_revoked', Math.max(1, 1000 - (performance.now() - t0)))).topic, 'room:c');
      // Every worker dropped its cached membership too.
      for (const d of daves) {
        d.send({ op: 'sub', topic: 'room:c', id: 'again' });
        assert.equal((await d.next((f) => f.id === 'again')).code, 'forbidden_topic');
      }
      const exits = s.lines.filter((l) => l.msg === 'worker exited; restarting');
      assert.deepEqual(exits, [], 'no worker restarted');
    });
  });

  describe(`two instances sharing Redis and PostgreSQL on ${engine}`, () => {
    let redis: RedisServer;
    let x: Running;
    let y: Running;
    let drop: () => Promise<void>;
    before(async () => {
      redis = await startRedis();
      const db = await createTestDatabase();
      drop = db.drop;
      const env = { REDIS_URL: redis.url, DATABASE_URL: db.url };
      x = await startServer(engine, env);
      y = await startServer(engine, env);
    });
    after(async () => {
      await x.stop();
      await y.stop();
      await redis.stop();
      await drop();
    });

    test('delivery crosses instances, goes on locally while Redis is down, and resumes', async () => {
      const u = await signup(x.url);
      assert.equal((await api(y.url, 'GET', '/v1/me', { token: u.token })).status, 200, 'same database');
      const onX = await connectWs(x.wsUrl, u.token);
      const onY = await connectWs(y.wsUrl, u.token);
      // Y subscribes to the user's channel asynchronously: wait until a publish from X is counted by Redis.
      await eventually(async () => {
        const r = await api(x.url, 'POST', '/v1/notify', { ...admin, body: { userId: u.id, title: 'probe' } });
        return r.body.live === 2;
      }, { what: 'a notify on X to count 2 live connections (Y subscribed through Redis)' });
      const cross = await onY.next((f) => f.op === 'msg' && f.data.title === 'probe');
      assert.equal(cross.topic, `user:${u.id}`);

      await redis.stop();
      await eventually(async () => (await metric(x.url, 'onebox_backplane_up')) === 0, { what: 'X to report onebox_backplane_up 0 with Redis stopped' });
      const down = await api(x.url, 'POST', '/v1/notify', { ...admin, body: { userId: u.id, title: 'while down' } });
      assert.equal(down.status, 202);
      assert.equal(down.body.live, 1);
      assert.equal((await onX.next((f) => f.op === 'msg' && f.data.title === 'while down')).data.title, 'while down');
      assert.ok((await metric(x.url, 'onebox_backplane_publish_errors_total')) >= 1);

      await redis.start();
      await eventually(
        async () => (await metric(x.url, 'onebox_backplane_up')) === 1 && (await metric(y.url, 'onebox_backplane_up')) === 1,
        { what: 'X and Y to report onebox_backplane_up 1 after Redis restarted' },
      );
      await eventually(async () => {
        const r = await api(x.url, 'POST', '/v1/notify', { ...admin, body: { userId: u.id, title: 'back' } });
        return r.body.live === 2;
      }, { what: 'a notify on X to count 2 live connections again after Redis restarted' });
      assert.equal((await onY.next((f) => f.op === 'msg' && f.data.title === 'back')).data.title, 'back');
      onX.close();
      onY.close();
    });
  });
}
