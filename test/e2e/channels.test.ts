/**
 * Channels over real sockets (issue 14): `members` topics opened by a membership or a
 * subscription token, a removal ending the live subscription, token misuse, and the members
 * admin API's bad input. The cross-process removal is in cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { signJwt } from '../../src/cli/bench/jwt.js';
import { ADMIN_TOKEN, api, ENGINES, JWT_SECRET, signup, startServer, type Running } from '../kit/server.js';
import { ClientPool, refusedUpgrade, type Client } from '../kit/ws.js';

const admin = { token: ADMIN_TOKEN };

/** A subscription token as an app would sign it (the server's default secret is JWT_SECRET). */
function subToken(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ alg: 'HS256', typ: 'JWT' }, { aud: 'onebox:sub', iat: now, exp: now + 300, ...claims }, secret);
}

for (const engine of ENGINES) {
  describe(`channels on ${engine}`, () => {
    let s: Running;
    const pool = new ClientPool(() => s.wsUrl);
    const open = (token: string) => pool.open(token);
    /** Send a frame with an id and return its answer: `ack` or the error code. */
    const ask = async (c: Client, frame: Record<string, unknown>) => {
      const id = `q${Math.random()}`;
      c.send({ ...frame, id });
      const f = await c.next((x) => x.id === id);
      return f.op === 'ack' ? 'ack' : f.code;
    };
    before(async () => {
      s = await startServer(engine);
    });
    after(async () => {
      pool.closeAll();
      await s.stop();
    });

    test('a members topic: refused without membership or token, opened by either; a removed member loses it within one second', async () => {
      const alice = await signup(s.url, 'alice');
      const bob = await signup(s.url, 'bob');
      const a = await open(alice.token);
      const b = await open(bob.token);
      assert.equal(await ask(a, { op: 'sub', topic: 'room:1' }), 'forbidden_topic');
      assert.equal(await ask(a, { op: 'pub', topic: 'room:1', data: 1 }), 'publish_forbidden');
      assert.equal((await api(s.url, 'PUT', `/v1/topics/room:1/members/${alice.id}`, admin)).status, 201);
      assert.equal((await api(s.url, 'PUT', `/v1/topics/room%3A1/members/${alice.id}`, admin)).status, 200, 'already a member; the encoded path names the same topic');
      assert.equal(await ask(a, { op: 'sub', topic: 'room:1' }), 'ack');
      assert.equal(await ask(b, { op: 'sub', topic: 'room:1' }), 'forbidden_topic');
      assert.equal(await ask(b, { op: 'sub', topic: 'room:1', token: subToken({ sub: bob.id, topic: 'room:1' }) }), 'ack');
      assert.equal(await ask(a, { op: 'pub', topic: 'room:1', data: 'from a member' }), 'ack');
      assert.equal((await b.next((f) => f.op === 'msg')).data, 'from a member');
      assert.equal((await a.next((f) => f.op === 'msg')).data, 'from a member');

      const t0 = performance.now();
      const removed = api(s.url, 'DELETE', `/v1/topics/room:1/members/${alice.id}`, admin);
      const revoked = await a.next((f) => f.code === 'membership_revoked', 1000);
      assert.ok(performance.now() - t0 <= 1000);
      assert.equal(revoked.topic, 'room:1');
      assert.equal((await removed).status, 204);
      assert.equal(await ask(b, { op: 'pub', topic: 'room:1', data: 'after' }), 'ack');
      assert.equal((await b.next((f) => f.op === 'msg')).data, 'after');
      await a.sync();
      assert.equal(a.frames.filter((f) => f.op === 'msg').length, 0, 'nothing of the topic after the removal');
      assert.equal(await ask(a, { op: 'sub', topic: 'room:1' }), 'forbidden_topic');
    });

    test('bad subscription tokens get their codes; an access token is no subscription token and a subscription token no access token', async () => {
      const carol = await signup(s.url, 'carol');
      const c = await open(carol.token);
      const now = Math.floor(Date.now() / 1000);
      const cases: Array<[string, string]> = [
        ['not-a-jwt', 'invalid_subscription_token'],
        [subToken({ sub: carol.id, topic: 'room:2', exp: now - 5 }), 'subscription_token_expired'],
        [subToken({ sub: 'someone-else', topic: 'room:2' }), 'invalid_subscription_token'],
        [subToken({ sub: carol.id, topic: 'room:3' }), 'invalid_subscription_token'],
        [subToken({ sub: carol.id, topic: 'room:2' }, 'a-different-secret-a-different-secret'), 'invalid_subscription_token'],
        [carol.token, 'invalid_subscription_token'],
      ];
      for (const [token, code] of cases) {
        assert.equal(await ask(c, { op: 'sub', topic: 'room:2', token }), code, token.slice(-16));
        assert.equal(await ask(c, { op: 'history', topic: 'room:2', token, since: { offset: 0, epoch: 'e' } }), code, token.slice(-16));
      }
      assert.equal(await ask(c, { op: 'sub', topic: 'room:2', token: 'x'.repeat(5000) }), 'bad_frame');
      assert.equal(await ask(c, { op: 'sub', topic: 'room:team-9', token: subToken({ sub: carol.id, prefix: 'room:team-' }) }), 'ack');

      const sub = subToken({ sub: carol.id, topic: 'room:2' });
      const upgrade = await refusedUpgrade(`${s.wsUrl}?token=${sub}`);
      assert.deepEqual([upgrade.status, upgrade.body.error.code], [401, 'invalid_token']);
      const me = await api(s.url, 'GET', '/v1/me', { token: sub });
      assert.deepEqual([me.status, me.body.error.code], [401, 'invalid_token']);
    });

    test('the members API: pages by user id; bad topics, namespaces, users, limits and cursors get documented 4xx codes, never 500', async () => {
      const users = [];
      for (let i = 0; i < 3; i++) users.push(await signup(s.url, 'm'));
      for (const u of users) assert.equal((await api(s.url, 'PUT', `/v1/topics/room:list/members/${u.id}`, admin)).status, 201);
      const first = await api(s.url, 'GET', '/v1/topics/room:list/members?limit=2', admin);
      const second = await api(s.url, 'GET', `/v1/topics/room:list/members?limit=2&cursor=${first.body.next}`, admin);
      assert.equal(second.body.next, null);
      assert.deepEqual(
        [...first.body.members, ...second.body.members].map((m: { userId: string }) => m.userId),
        users.map((u) => u.id).sort(),
      );
      assert.ok(!Number.isNaN(Date.parse(first.body.members[0].addedAt)));

      const u = users[0]!.id;
      const cases: Array<[string, string, number, string]> = [
        ['PUT', '/v1/topics/room:1/members/no-such-user', 404, 'not_found'],
        ['DELETE', '/v1/topics/room:1/members/no-such-user', 404, 'not_found'],
        ['PUT', `/v1/topics/${'r'.repeat(300)}:1/members/${u}`, 400, 'validation_failed'],
        ['PUT', `/v1/topics/bad%20topic/members/${u}`, 400, 'validation_failed'],
        ['PUT', `/v1/topics/nope:1/members/${u}`, 400, 'unknown_namespace'],
        ['PUT', `/v1/topics/plain/members/${u}`, 400, 'unknown_namespace'],
        ['PUT', `/v1/topics/public:news/members/${u}`, 400, 'not_members_namespace'],
        ['GET', `/v1/topics/user:${u}/members`, 400, 'not_members_namespace'],
        ['GET', '/v1/topics/room:list/members?limit=100000', 400, 'validation_failed'],
        ['GET', '/v1/topics/room:list/members?limit=0', 400, 'validation_failed'],
        ['GET', '/v1/topics/room:list/members?limit=ten', 400, 'validation_failed'],
        ['GET', '/v1/topics/room:list/members?cursor=%00%00', 400, 'validation_failed'],
        ['GET', `/v1/topics/room:list/members?cursor=${'A'.repeat(5000)}`, 400, 'validation_failed'],
      ];
      for (const [method, path, status, code] of cases) {
        const r = await api(s.url, method, path, admin);
        assert.deepEqual([r.status, r.body?.error?.code], [status, code], `${method} ${path.slice(0, 80)}`);
      }
      const notAdmin = await api(s.url, 'PUT', `/v1/topics/room:1/members/${u}`, { token: users[0]!.token });
      assert.deepEqual([notAdmin.status, notAdmin.body.error.code], [403, 'forbidden']);
      const notify = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { topic: 'nope:1', title: 't' } });
      assert.deepEqual([notify.status, notify.body.error.code], [400, 'unknown_namespace']);
    });
  });
}
