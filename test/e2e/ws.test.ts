import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { signJwt } from '../../src/cli/bench/jwt.js';
import { ADMIN_TOKEN, api, CHAT_NAMESPACE, ENGINES, JWT_SECRET, signup, startServer, type Running } from '../kit/server.js';
import { ClientPool, connectWs, openWs, refusedUpgrade } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';
import { metric } from '../kit/metrics.js';
import { floodUntilDropped } from '../kit/flood.js';

/** The heartbeat of the main server here: short, so that the interval can be measured. */
const PING_INTERVAL_MS = 200;

for (const engine of ENGINES) {
  describe(`WebSocket gateway on ${engine}`, () => {
    let s: Running;
    let alice: { token: string; id: string };
    let bob: { token: string; id: string };
    const pool = new ClientPool(() => s.wsUrl);
    const open = (token: string, opts?: WebSocket.ClientOptions) => pool.open(token, opts);
    before(async () => {
      s = await startServer(engine, {
        PING_INTERVAL_MS: String(PING_INTERVAL_MS),
        IDLE_TIMEOUT_MS: '600',
        MAX_MESSAGE_BYTES: '70000',
        MAX_BUFFERED_BYTES: '262144',
        WS_PUBLISH_PER_S: '5',
        MAX_SUBSCRIPTIONS: '3',
      }, CHAT_NAMESPACE);
      alice = await signup(s.url, 'alice');
      bob = await signup(s.url, 'bob');
    });
    after(async () => {
      pool.closeAll();
      await s.stop();
    });

    test('refuses missing and bad tokens with a JSON 401 before upgrading; accepts a token in the Authorization header', async () => {
      const none = await refusedUpgrade(s.wsUrl);
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, 'unauthorized');
      const bad = await refusedUpgrade(`${s.wsUrl}?token=forged.token.here`);
      assert.equal(bad.status, 401);
      assert.equal(bad.body.error.code, 'invalid_token');
      const header = await connectWs(s.wsUrl, '', { headers: { authorization: `Bearer ${alice.token}` } });
      await header.sync();
      header.close();
      const badHeader = await refusedUpgrade(s.wsUrl, { authorization: 'Bearer forged.token.here' });
      assert.equal(badHeader.status, 401);
      assert.equal(badHeader.body.error.code, 'invalid_token');
    });

    test('hello comes first; an onebox.v1 client has the subprotocol selected and gets refusals as close codes 4003 and 4001', async () => {
      const plain = await open(alice.token);
      await plain.sync();
      assert.deepEqual(Object.keys(plain.hello ?? {}).sort(), ['exp', 'op', 'pingIntervalMs', 'ts', 'v']);
      assert.equal(plain.hello!.pingIntervalMs, PING_INTERVAL_MS);
      assert.equal(plain.hello!.exp, (JSON.parse(Buffer.from(alice.token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp);
      assert.equal(plain.ws.protocol, '', 'nothing selected when not offered');
      const v1 = await connectWs(s.wsUrl, alice.token, {}, ['onebox.v1']);
      assert.equal(v1.ws.protocol, 'onebox.v1');
      await v1.sync();
      assert.equal(v1.hello?.op, 'hello');
      v1.close();
      const now = Math.floor(Date.now() / 1000);
      const expired = signJwt({ alg: 'HS256', typ: 'JWT' }, { sub: alice.id, iss: 'onebox', aud: 'onebox:access', iat: now - 60, exp: now - 1 }, JWT_SECRET);
      const cases = [
        ['forged.token.here', { code: 4003, reason: 'invalid_token' }],
        [expired, { code: 4001, reason: 'token_expired' }],
      ] as const;
      for (const [token, close] of cases) {
        const refused = await connectWs(s.wsUrl, token, {}, ['onebox.v1']);
        assert.deepEqual(await refused.waitClosed(), close);
        assert.equal(refused.hello, undefined);
      }
      const none = await openWs(s.wsUrl, {}, {}, ['onebox.v1']);
      assert.deepEqual(await none.waitClosed(), { code: 4003, reason: 'unauthorized' });
    });

    test('a socket is closed with 4001 once its token expires, unless the auth op gave it a fresh one', async () => {
      const now = Math.floor(Date.now() / 1000);
      const short = signJwt({ alg: 'HS256', typ: 'JWT' }, { sub: alice.id, iss: 'onebox', aud: 'onebox:access', iat: now, exp: now + 2 }, JWT_SECRET);
      const lapsing = await open(short);
      const renewed = await open(short);
      renewed.send({ op: 'auth', id: 'a', token: bob.token });
      assert.equal((await renewed.next((f) => f.id === 'a')).code, 'invalid_token', "another user's token");
      renewed.send({ op: 'auth', id: 'b', token: alice.token });
      const ack = await renewed.next((f) => f.id === 'b');
      assert.deepEqual([ack.op, ack.ack, ack.exp > now + 3600], ['ack', 'auth', true]);
      assert.deepEqual(await lapsing.waitClosed(6000), { code: 4001, reason: 'token_expired' });
      await renewed.sync();
    });

    test('sub, pub to subscribers, unsub stops delivery', async () => {
      const a = await open(alice.token);
      const b = await open(bob.token);
      a.send({ op: 'sub', topic: 'chat:1', id: 1 });
      const ack = await a.next((f) => f.op === 'ack');
      assert.deepEqual([ack.id, ack.ack, ack.topic, ack.offset, typeof ack.epoch], [1, 'sub', 'chat:1', 0, 'string']);
      b.send({ op: 'pub', topic: 'chat:1', data: { text: 'hi' }, id: 'p1' });
      await b.next((f) => f.op === 'ack' && f.id === 'p1');
      const msg = await a.next((f) => f.op === 'msg');
      const { ts, ...rest } = msg;
      assert.deepEqual(rest, { op: 'msg', topic: 'chat:1', offset: 1, data: { text: 'hi' }, from: bob.id });
      assert.ok(Math.abs(Date.now() - ts) < 60_000, 'ts is server time in ms');
      a.send({ op: 'unsub', topic: 'chat:1', id: 2 });
      await a.next((f) => f.op === 'ack' && f.id === 2);
      b.send({ op: 'pub', topic: 'chat:1', data: 'again', id: 'p2' });
      await b.next((f) => f.op === 'ack' && f.id === 'p2');
      await a.sync();
      assert.equal(a.frames.filter((f) => f.op === 'msg').length, 0);
    });

    test('topic rules: charset, namespaces, other users, publish rules, subscription cap, rate limit', async () => {
      const a = await open(alice.token);
      const cases: Array<[unknown, string]> = [
        [{ op: 'sub', topic: 'bad topic!', id: 1 }, 'invalid_topic'],
        [{ op: 'sub', topic: 'x'.repeat(101), id: 2 }, 'invalid_topic'],
        [{ op: 'sub', topic: `user:${bob.id}`, id: 3 }, 'forbidden_topic'],
        [{ op: 'pub', topic: 'public:news', data: 1, id: 4 }, 'publish_forbidden'],
        [{ op: 'sub', topic: 'news', id: 6 }, 'unknown_namespace'],
        [{ op: 'nope', id: 5 }, 'unknown_op'],
        [[1, 2], 'bad_frame'],
      ];
      for (const [frame, code] of cases) {
        a.send(frame);
        const e = await a.next((f) => f.op === 'error');
        assert.equal(e.code, code, JSON.stringify(frame));
      }
      a.send({ op: 'sub', topic: `user:${alice.id}`, id: 'own' });
      await a.next((f) => f.op === 'ack' && f.id === 'own');
      // The user's own channel takes no subscription slot: three topics fit, the fourth does not.
      for (const t of ['t1', 't2', 't3']) a.send({ op: 'sub', topic: `public:${t}`, id: t });
      await a.next((f) => f.id === 't3' && f.op === 'ack');
      a.send({ op: 'sub', topic: 'public:t4', id: 't4' });
      assert.equal((await a.next((f) => f.id === 't4')).code, 'too_many_subscriptions');
      const codes: string[] = [];
      for (let i = 0; i < 15; i++) a.send({ op: 'pub', topic: 'chat:rate', data: i, id: `r${i}` });
      for (let i = 0; i < 15; i++) codes.push((await a.next((f) => f.id === `r${i}`)).op);
      assert.ok(codes.includes('error'), 'publish rate limit never hit');
      assert.equal(codes[0], 'ack');
    });

    test('invalid JSON gets an error frame and the connection stays open', async () => {
      const a = await open(alice.token);
      a.ws.send('{not json');
      const e = await a.next((f) => f.op === 'error');
      assert.equal(e.code, 'bad_json');
      await a.sync();
      assert.equal(a.ws.readyState, WebSocket.OPEN);
    });

    test('notify reaches every connection of the user', async () => {
      const a1 = await open(alice.token);
      const a2 = await open(alice.token);
      const b = await open(bob.token);
      const r = await api(s.url, 'POST', '/v1/notify', {
        token: ADMIN_TOKEN,
        body: { userId: alice.id, title: 'Hello', body: 'two devices', data: { k: 1 } },
      });
      assert.equal(r.status, 202);
      for (const c of [a1, a2]) {
        const m = await c.next((f) => f.op === 'msg');
        assert.equal(m.topic, `user:${alice.id}`);
        assert.equal(m.data.title, 'Hello');
      }
      await b.sync();
      assert.equal(b.frames.filter((f) => f.op === 'msg').length, 0);
      const forbidden = await api(s.url, 'POST', '/v1/notify', { token: alice.token, body: { userId: alice.id, title: 'x' } });
      assert.equal(forbidden.status, 403);
    });

    test('protocol pings arrive at the configured interval', async () => {
      const a = await open(alice.token);
      const count = 7;
      await eventually(() => a.pings >= count, { timeoutMs: count * PING_INTERVAL_MS * 3, what: `${count} protocol pings` });
      const t = a.pingTimes.slice(0, count);
      const gaps = t.slice(1).map((x, i) => x - t[i]!);
      const mean = (t.at(-1)! - t[0]!) / gaps.length;
      const median = [...gaps].sort((x, y) => x - y)[Math.floor(gaps.length / 2)]!;
      // A band that half or twice the interval falls outside of, with room for timer jitter
      // (the heartbeat ticks every 25 ms) on a loaded box.
      const [low, high] = [PING_INTERVAL_MS * 0.7, PING_INTERVAL_MS * 1.5];
      const shown = `gaps ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`;
      assert.ok(mean >= low && mean <= high, `mean interval ${mean.toFixed(0)} ms outside [${low}, ${high}]: ${shown}`);
      assert.ok(median >= low && median <= high, `median interval ${median.toFixed(0)} ms outside [${low}, ${high}]: ${shown}`);
    });

    test('a client that stops answering pings is terminated after the idle timeout', async () => {
      const started = Date.now();
      const silent = await open(alice.token, { autoPong: false });
      const { code } = await silent.waitClosed(5000);
      const elapsed = Date.now() - started;
      assert.equal(code, 1006);
      assert.ok(elapsed >= 600, `closed after ${elapsed} ms`);
      assert.ok(elapsed < 3000, `closed after ${elapsed} ms`);
      assert.ok((await metric(s.url, 'onebox_ws_idle_timeouts_total')) >= 1);
    });

    test('a message over MAX_MESSAGE_BYTES closes with 1009', async () => {
      const a = await open(alice.token);
      a.ws.send(JSON.stringify({ op: 'ping', pad: 'x'.repeat(80_000) }));
      assert.equal((await a.waitClosed()).code, 1009);
    });

    test('invalid UTF-8 in a text frame closes with 1007', async () => {
      const a = await open(alice.token);
      a.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      assert.equal((await a.waitClosed()).code, 1007);
    });

  });

  describe(`slow consumer on ${engine}`, () => {
    // Its own server with the default heartbeat: a paused client cannot answer pings, and
    // the idle timeout must not win the race against backpressure.
    let s: Running;
    let bob: { token: string };
    before(async () => {
      s = await startServer(engine, { MAX_BUFFERED_BYTES: '262144' });
      bob = await signup(s.url, 'bob');
    });
    after(() => s.stop());
    const open = (token: string) => connectWs(s.wsUrl, token);

    test('a consumer that stops reading is dropped with 1013, memory stays bounded', async () => {
      const slow = await open(bob.token);
      slow.send({ op: 'sub', topic: 'public:flood-1', id: 's' });
      await slow.next((f) => f.id === 's');
      const rssBefore = await metric(s.url, 'onebox_process_resident_memory_bytes');
      const dropsBefore = await metric(s.url, 'onebox_ws_slow_consumers_total');
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const { bytes: published } = await floodUntilDropped(s.url, 'public:flood-1');
      assert.equal(await metric(s.url, 'onebox_ws_slow_consumers_total'), dropsBefore + 1);
      const rssAfter = await metric(s.url, 'onebox_process_resident_memory_bytes');
      assert.ok(rssAfter - rssBefore < 64 * 1024 * 1024, `RSS grew ${rssAfter - rssBefore} after ${published} bytes`);
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      const { code } = await slow.waitClosed();
      assert.equal(code, 1013);
    });

  });

  describe(`WebSocket ceiling on ${engine}`, () => {
    let s: Running;
    before(async () => {
      s = await startServer(engine, { MAX_CONNECTIONS: '2' });
    });
    after(() => s.stop());
    test('refuses beyond MAX_CONNECTIONS with 503 and a Retry-After', async () => {
      const u = await signup(s.url);
      const a = await connectWs(s.wsUrl, u.token);
      const b = await connectWs(s.wsUrl, u.token);
      const r = await refusedUpgrade(`${s.wsUrl}?token=${u.token}`);
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'over_capacity');
      assert.ok(Number(r.headers['retry-after']) >= 1);
      a.close();
      await a.waitClosed();
      // The slot frees once the server has seen the close.
      await eventually(async () => (await metric(s.url, 'onebox_ws_connections')) === 1, { what: 'onebox_ws_connections to fall to 1 after a close' });
      const c = await connectWs(s.wsUrl, u.token);
      b.close();
      c.close();
    });
  });

  describe(`WebSocket shutdown on ${engine}`, () => {
    test('SIGTERM closes connections with 1001 and exits 0', async (t) => {
      const s = await startServer(engine);
      t.after(() => s.stop());
      const u = await signup(s.url);
      const a = await connectWs(s.wsUrl, u.token);
      await a.sync();
      s.proc.kill('SIGTERM');
      assert.equal((await a.waitClosed()).code, 1001);
      assert.equal((await eventually(s.exited, { what: 'the server to exit after SIGTERM' })).code, 0);
    });
  });
}
