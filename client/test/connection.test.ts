/**
 * The connection state machine over a fake socket and a fake clock: backoff and suspension,
 * the server's close signals (1012, 1013 retry=, 4001, 4003), dead-socket detection, token
 * refresh on a live socket, pause/resume/setOnline/close and their timers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeSocket, harness, settle } from './fakes.js';

test('connects with the token in the query, offering onebox.v1; connected on hello', async () => {
  const h = await harness();
  const s = FakeSocket.last();
  assert.equal(s.url, 'wss://onebox.test/v1/ws?token=token-1-connect');
  assert.deepEqual(s.protocols, ['onebox.v1']);
  assert.equal(h.state(), 'connecting');
  s.open();
  assert.equal(h.state(), 'connecting', 'not before the hello');
  s.receive({ op: 'hello', v: 1, pingIntervalMs: 30_000, ts: h.clock.now(), exp: h.clock.now() / 1000 + 3600 });
  assert.deepEqual(h.states.map((x) => x[0]), ['connecting', 'connected']);
  h.ob.close();
});

test('failed attempts back off with full jitter (window doubling to the cap), then suspended with slow retries', async () => {
  const h = await harness({ backoff: { baseMs: 1000, capMs: 16_000, suspendAfterMs: 30_000, suspendedRetryMs: 40_000 } });
  const waits: Array<[string, number | undefined]> = [];
  for (let i = 0; i < 9; i++) {
    FakeSocket.last().serverClose(1006);
    const [state, info] = h.states[h.states.length - 1]!;
    waits.push([state, info.retryInMs]);
    await h.clock.advance(info.retryInMs!);
    assert.equal(FakeSocket.all.length, i + 2, 'a new attempt when the delay is over');
  }
  // random() = 0.5: half of each window; suspended once 30 s passed without a connection
  // (the 8th drop comes 31.5 s after the first).
  assert.deepEqual(waits, [
    ['disconnected', 500], ['disconnected', 1000], ['disconnected', 2000], ['disconnected', 4000], ['disconnected', 8000],
    ['disconnected', 8000], ['disconnected', 8000], ['suspended', 30_000], ['suspended', 30_000],
  ]);
  // A connection resets it: the next drop is back to the first window.
  FakeSocket.last().accept();
  assert.equal(h.state(), 'connected');
  await h.clock.advance(10_000);
  FakeSocket.last().serverClose(1006);
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { code: 1006, retryInMs: 500 }]);
  h.ob.close();
});

test('a connection that drops right after connecting keeps climbing the backoff (no flapping storm)', async () => {
  const h = await harness();
  const retries: number[] = [];
  for (let i = 0; i < 4; i++) {
    FakeSocket.last().accept();
    FakeSocket.last().serverClose(1006);
    retries.push(h.states[h.states.length - 1]![1].retryInMs!);
    await h.clock.advance(retries[i]!);
  }
  assert.deepEqual(retries, [500, 1000, 2000, 4000]);
  h.ob.close();
});

test('1012 (restart): back within restartSpreadMs, without climbing the backoff', async () => {
  const h = await harness({ backoff: { restartSpreadMs: 3000 } });
  FakeSocket.last().accept();
  FakeSocket.last().serverClose(1012, '');
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { code: 1012, retryInMs: 1500 }]);
  await h.clock.advance(1499);
  assert.equal(FakeSocket.all.length, 1);
  await h.clock.advance(1);
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.last().serverClose(1006);
  assert.equal(h.states[h.states.length - 1]![1].retryInMs, 500, 'the first backoff window after the restart');
  h.ob.close();
});

test('1013 with retry=<s> (over capacity, the ceiling refusal): the next attempt waits in [s, 2s]', async () => {
  const h = await harness({ random: () => 0.25 });
  FakeSocket.last().open();
  FakeSocket.last().serverClose(1013, 'over_capacity retry=8');
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { code: 1013, reason: 'over_capacity', retryInMs: 10_000 }]);
  await h.clock.advance(9999);
  assert.equal(FakeSocket.all.length, 1);
  await h.clock.advance(1);
  assert.equal(FakeSocket.all.length, 2);
  h.ob.close();
});

test('4001: one token refresh and an immediate reconnect; a second 4001 before a hello is a log-out, not a loop', async () => {
  const h = await harness();
  let unauthorized = 0;
  h.ob.on('unauthorized', () => unauthorized++);
  FakeSocket.last().accept();
  FakeSocket.last().serverClose(4001, 'token_expired');
  await settle();
  assert.equal(FakeSocket.all.length, 2, 'reconnected at once');
  assert.deepEqual(h.tokens, ['token-1-connect', 'token-2-expired']);
  assert.match(FakeSocket.last().url, /token=token-2-expired$/);
  // The refreshed token is refused too (accept-then-close, no hello).
  FakeSocket.last().open();
  FakeSocket.last().serverClose(4001, 'token_expired');
  await h.clock.advance(600_000);
  assert.equal(FakeSocket.all.length, 2, 'no further attempt');
  assert.equal(h.tokens.length, 2);
  assert.equal(unauthorized, 1);
  assert.deepEqual(h.states[h.states.length - 1], ['closed', { code: 4001, reason: 'token_expired' }]);
  assert.deepEqual(h.clock.pending(), []);
});

test('4001 after a connection that worked refreshes again: the guard is per expiry, not per client', async () => {
  const h = await harness();
  for (let i = 0; i < 3; i++) {
    FakeSocket.last().accept();
    FakeSocket.last().serverClose(4001, 'token_expired');
    await settle();
  }
  assert.equal(FakeSocket.all.length, 4);
  assert.equal(h.tokens.filter((t) => t.endsWith('-expired')).length, 3);
  h.ob.close();
});

test('4003: closed and `unauthorized`, no timer left; resume() after a new login connects again', async () => {
  const h = await harness();
  const events: unknown[] = [];
  h.ob.on('unauthorized', (info) => events.push(info));
  FakeSocket.last().open();
  FakeSocket.last().serverClose(4003, 'session_revoked');
  assert.deepEqual(events, [{ code: 4003, reason: 'session_revoked' }]);
  assert.equal(h.state(), 'closed');
  assert.deepEqual(h.clock.pending(), []);
  await h.clock.advance(600_000);
  assert.equal(FakeSocket.all.length, 1);
  h.ob.resume();
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(h.state(), 'connecting');
  h.ob.close();
});

test('a silent connection: ping after one ping interval, given up after the second (~2 intervals); any frame keeps it', async () => {
  const h = await harness();
  const s = FakeSocket.last();
  s.autoPong = false;
  s.accept({ pingIntervalMs: 10_000 });
  await h.clock.advance(9999);
  assert.equal(s.ops('ping').length, 0);
  await h.clock.advance(1);
  assert.equal(s.ops('ping').length, 1, 'a ping at the first interval of silence');
  s.receive({ op: 'pong', ts: 1 });
  await h.clock.advance(10_000);
  assert.equal(h.state(), 'connected', 'the pong kept it');
  assert.equal(s.ops('ping').length, 2);
  await h.clock.advance(9999);
  assert.equal(h.state(), 'connected');
  await h.clock.advance(1);
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { reason: 'dead', retryInMs: 500 }]);
  assert.deepEqual(s.closedWith, { code: 4000, reason: 'client_gone' });
  h.ob.close();
});

test('no hello within connectTimeoutMs: the attempt is abandoned and retried', async () => {
  const h = await harness({ connectTimeoutMs: 5000 });
  FakeSocket.last().open();
  await h.clock.advance(5000);
  assert.equal(h.states[h.states.length - 1]![1].reason, 'connect_timeout');
  assert.equal(FakeSocket.all[0]!.readyState, 2, 'the first socket is closed');
  h.ob.close();
});

test('token refresh: getToken before exp, jittered into the last quarter of life (at most 2 min), sent with `auth` on the live socket', async () => {
  const at = (random: number) => harness({ random: () => random });
  for (const [random, expect, next] of [[0, 2700_000, 540_000], [0.999, 2640_060, 480_060]] as const) {
    const h = await at(random);
    const s = FakeSocket.last();
    s.accept({ ts: h.clock.now(), exp: h.clock.now() / 1000 + 2760 }); // 46 min of life: lead 60 s
    await h.clock.advance(expect - 1);
    assert.equal(h.tokens.length, 1, `not before ${expect} ms (random ${random})`);
    await h.clock.advance(1);
    assert.deepEqual(h.tokens.slice(1), ['token-2-expiring']);
    const auth = s.ops('auth')[0]!;
    assert.equal(auth.token, 'token-2-expiring');
    s.receive({ op: 'ack', id: auth.id, ack: 'auth', exp: h.clock.now() / 1000 + 600 });
    // 10 min left: the refresh comes 1-2 min before the new exp.
    await h.clock.advance(next - 1);
    assert.equal(s.ops('auth').length, 1);
    await h.clock.advance(1);
    assert.equal(s.ops('auth').length, 2, 'the next refresh planned from the new exp');
    assert.equal(FakeSocket.all.length, 1, 'the socket was never replaced');
    h.ob.close();
  }
});

test('pause(): closes with 1000 and leaves no timer (pending publish, due receipts, refresh, watchdog); resume() reconnects at once and resends', async () => {
  const h = await harness();
  const s = FakeSocket.last();
  s.accept({ exp: h.clock.now() / 1000 + 3600 });
  h.ob.subscribe('user:u1', () => undefined, { recover: false });
  s.ackSubs(() => ({ offset: 0, epoch: 'e' }));
  s.receive({ op: 'msg', topic: 'user:u1', offset: 1, ts: 1, data: {} });
  const published = h.ob.publish('room:1', { text: 'hi' }, { key: 'k1' });
  assert.ok(h.clock.pending().length >= 4, 'timers run while connected');
  h.ob.pause();
  assert.deepEqual(s.closedWith, { code: 1000, reason: 'paused' });
  assert.deepEqual(s.ops('recv'), [{ op: 'recv', topic: 'user:u1', offset: 1 }], 'due receipts sent before closing');
  assert.deepEqual(h.clock.pending(), []);
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { reason: 'paused' }]);
  await h.clock.advance(10_000);
  assert.equal(FakeSocket.all.length, 1, 'nothing happens while paused');
  h.ob.resume();
  await settle();
  const s2 = FakeSocket.last();
  assert.equal(FakeSocket.all.length, 2);
  s2.accept();
  assert.deepEqual(s2.ops('sub').map((f) => f.topic), ['user:u1']);
  s2.ackSubs(() => ({ offset: 1, epoch: 'e' }));
  const pub = s2.ops('pub')[0]!;
  assert.equal(pub.key, 'k1');
  s2.receive({ op: 'ack', id: pub.id, ack: 'pub', topic: 'room:1', offset: 9, epoch: 'e' });
  assert.deepEqual(await published, { offset: 9, epoch: 'e' });
  h.ob.close();
});

test('setOnline(false) stops the retries (state disconnected/offline); setOnline(true) connects at once', async () => {
  const h = await harness();
  FakeSocket.last().serverClose(1006);
  h.ob.setOnline(false);
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { reason: 'offline' }]);
  assert.deepEqual(h.clock.pending(), []);
  await h.clock.advance(600_000);
  assert.equal(FakeSocket.all.length, 1);
  h.ob.setOnline(true);
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  h.ob.close();
});

test('close(): the socket closes with 1000, pending requests reject with `closed`, no timer is left', async () => {
  const h = await harness();
  FakeSocket.last().accept();
  const p = h.ob.publish('room:1', 1);
  h.ob.close();
  await assert.rejects(p, { code: 'closed' });
  assert.deepEqual(FakeSocket.last().closedWith, { code: 1000, reason: 'closed' });
  assert.equal(h.state(), 'closed');
  assert.deepEqual(h.clock.pending(), []);
});

test('getToken failing: disconnected with backoff, and the next attempt asks again', async () => {
  let calls = 0;
  const h = await harness({ getToken: () => (++calls === 1 ? Promise.reject(new Error('offline')) : Promise.resolve('t')) });
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { reason: 'token_unavailable', retryInMs: 500 }]);
  await h.clock.advance(500);
  assert.equal(calls, 2);
  assert.equal(FakeSocket.all.length, 1);
  h.ob.close();
});

test('token refresh refused: invalid_token is not retried (the 4001 at exp decides); store_unavailable is retried while time is left; exp 0 plans none', async () => {
  const h = await harness({ random: () => 0 });
  const errors: string[] = [];
  h.ob.on('error', (e) => errors.push(e.code));
  const s = FakeSocket.last();
  s.accept({ ts: h.clock.now(), exp: h.clock.now() / 1000 + 400 }); // lead 60 s: refresh at 340 s
  await h.clock.advance(340_000);
  s.receive({ op: 'error', id: s.ops('auth')[0]!.id, code: 'store_unavailable', message: 'try again' });
  await settle();
  assert.deepEqual(errors, ['store_unavailable']);
  await h.clock.advance(15_000); // min(60 s / 2, 30 s) × 0.5
  assert.equal(s.ops('auth').length, 2, 'retried');
  s.receive({ op: 'error', id: s.ops('auth')[1]!.id, code: 'invalid_token', message: 'no' });
  await settle();
  assert.deepEqual(errors, ['store_unavailable', 'invalid_token']);
  await h.clock.advance(44_000);
  assert.equal(s.ops('auth').length, 2, 'a refused token is not sent again');
  h.ob.close();

  const none = await harness();
  FakeSocket.last().accept({ exp: 0 });
  await none.clock.advance(3_600_000);
  assert.deepEqual([none.tokens.length, FakeSocket.last().ops('auth').length], [1, 0]);
  none.ob.close();
});
