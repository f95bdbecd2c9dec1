/**
 * The gateway through a fake transport: no socket, no engine. Time is node:test's mock clock
 * (Date and the heartbeat's setInterval), advanced one heartbeat tick at a time.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CLOSE } from '../../src/errors.js';
import { LocalLimits } from '../../src/lib/local-limits.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Conn } from '../../src/realtime/conn.js';
import { Gateway, REFUSING_MAX, type Authentication, type GatewayDeps, type GatewayOptions, type UpgradeRequest } from '../../src/realtime/gateway.js';
import type { Hub, Outgoing } from '../../src/realtime/hub.js';
import { Channels, DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import { FakeSocketOps, framesOf, gatewayOptions, lastFrame, type FakeSocket } from '../kit/fake-socket.js';

/** One message as the hub takes it: fire-and-forget (no offset), at time 0. */
const out = (topic: string, data: unknown, from: string | null = null): Outgoing => ({ topic, dataJson: JSON.stringify(data), from, offset: null, ts: 0 });


const T0 = 1_700_000_000_000;
/** 1000 ms over 40 buckets: the heartbeat ticks every 25 ms. */
const TICK_MS = 25;

const OPTIONS = gatewayOptions();

/** The built-in namespaces plus `chat`, which any signed-in user may read and publish to. */
const CHANNELS = new Channels({ ...DEFAULT_NAMESPACES, chat: { subscribe: 'authenticated', publish: 'authenticated' } });

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** An upgrade request; `authorization` names the user the default authenticator admits. */
const request = (over: Partial<UpgradeRequest> = {}): UpgradeRequest => ({
  url: '/v1/ws',
  authorization: 'alice',
  ip: '192.0.2.1',
  version: '13',
  key: KEY,
  forwarded: undefined,
  ...over,
});

const admitByName = (req: UpgradeRequest): Promise<Authentication> =>
  Promise.resolve(req.authorization ? { ok: true, userId: req.authorization } : { ok: false, code: 'unauthorized', message: 'no token' });

/** A gateway on the fake transport and the mock clock, stopped after the test. */
function setup(t: TestContext, options: Partial<GatewayOptions> = {}, deps: Partial<GatewayDeps> = {}) {
  t.mock.timers.enable({ apis: ['Date', 'setInterval', 'setTimeout'], now: T0 });
  const ops = new FakeSocketOps();
  const gw = new Gateway({ ...OPTIONS, ...options }, { authenticate: admitByName, limits: new LocalLimits(), log: createLogger('silent'), channels: CHANNELS, ...deps });
  gw.attach(ops);
  t.after(() => gw.stop());

  /** Authorize and open a connection for userId, as an engine would. */
  async function connect(userId = 'alice', over: Partial<UpgradeRequest> = {}): Promise<{ conn: Conn; sock: FakeSocket }> {
    const d = await gw.authorize(request({ authorization: userId, ...over }));
    assert.ok(d.ok, `upgrade of ${userId} refused`);
    const sock = ops.socket();
    gw.open(d.conn, sock);
    return { conn: d.conn, sock };
  }

  /** Send one client frame. */
  const send = (conn: Conn, frame: unknown) => gw.message(conn, JSON.stringify(frame), false);

  /** Move the mock clock forward one heartbeat tick at a time (each tick sees its own time). */
  const advance = (ms: number) => {
    for (let left = ms; left > 0; left -= TICK_MS) t.mock.timers.tick(Math.min(TICK_MS, left));
  };

  return { gw, ops, connect, send, advance };
}

/** The status, error code and headers of a refused upgrade. */
async function refusal(gw: Gateway, req: UpgradeRequest) {
  const d = await gw.authorize(req);
  assert.ok(!d.ok, 'expected a refusal');
  return { status: d.status, code: (JSON.parse(d.body) as { error: { code: string } }).error.code, headers: d.headers };
}

// --- authorize ----------------------------------------------------------------------------

test('a handshake with another version is 426 upgrade_required naming version 13; a bad key is 400 bad_request', async (t) => {
  let asked = 0;
  const { gw } = setup(t, {}, { authenticate: (r) => (asked++, admitByName(r)) });
  for (const version of ['12', '', null, undefined]) {
    const r = await refusal(gw, request({ version }));
    assert.equal(r.status, 426, String(version));
    assert.equal(r.code, 'upgrade_required');
    assert.equal(r.headers['Sec-WebSocket-Version'], '13');
  }
  // The key is base64 of 16 bytes: 22 characters, the last of [AQgw], then `==`.
  for (const key of [null, undefined, '', 'short', 'dGhlIHNhbXBsZSBub25jZB==', `${KEY}=`, 'dGhlIHNhbXBsZSBub25jZQ']) {
    const r = await refusal(gw, request({ key }));
    assert.equal(r.status, 400, String(key));
    assert.equal(r.code, 'bad_request');
  }
  assert.equal(asked, 0, 'refused before the token is checked');
  assert.equal(gw.stats.refused.get('handshake'), 11);
  assert.equal(gw.stats.pending, 0);
});

test('every refusal asks to close the HTTP connection and carries a JSON error body', async (t) => {
  const { gw } = setup(t, { maxConnections: 1 });
  const decisions = [];
  for (const req of [request({ version: '8' }), request({ key: 'x' }), request({ authorization: null })]) decisions.push(await gw.authorize(req));
  assert.ok((await gw.authorize(request())).ok);
  decisions.push(await gw.authorize(request({ authorization: 'bob' })));
  for (const d of decisions) {
    assert.ok(!d.ok);
    assert.equal(d.headers.Connection, 'close', String(d.status));
    assert.equal(d.headers['Content-Type'], 'application/json');
    assert.equal(typeof (JSON.parse(d.body) as { error: { code: unknown } }).error.code, 'string');
  }
  assert.deepEqual([...gw.stats.refused.keys()].sort(), ['ceiling', 'handshake', 'unauthorized']);
});

test('at the connection ceiling (open plus pending) an upgrade is 503 over_capacity with Retry-After, before the token is checked', async (t) => {
  let asked = 0;
  const { gw, connect } = setup(t, { maxConnections: 2 }, { authenticate: (r) => (asked++, admitByName(r)) });
  await connect('alice');
  const pending = await gw.authorize(request({ authorization: 'bob' }));
  assert.ok(pending.ok);
  assert.deepEqual([gw.stats.open, gw.stats.pending], [1, 1]);
  const r = await refusal(gw, request({ authorization: 'carol' }));
  assert.equal(r.status, 503);
  assert.equal(r.code, 'over_capacity');
  assert.ok(Number(r.headers['Retry-After']) >= 1);
  assert.equal(asked, 2);
  assert.equal(gw.stats.refused.get('ceiling'), 1);
  gw.abort(pending.conn);
  assert.ok((await gw.authorize(request({ authorization: 'carol' }))).ok, 'the aborted slot is free again');
});

test('upgrades that pass the ceiling together are checked again after the token: the late one is refused', async (t) => {
  const { gw } = setup(t, { maxConnections: 1 });
  const [first, second] = await Promise.all([gw.authorize(request()), gw.authorize(request({ authorization: 'bob' }))]);
  assert.equal(first.ok, true);
  assert.ok(!second.ok);
  assert.equal(second.status, 503);
  assert.equal(gw.stats.pending, 1);
});

test('beyond MAX_HANDSHAKES in flight (token being checked, or authorized and not yet open) an upgrade is 503 over_capacity with Retry-After before its token is checked', async (t) => {
  const waiting: Array<() => void> = [];
  let asked = 0;
  const { gw, ops } = setup(t, { maxHandshakes: 2 }, {
    authenticate: (req) => (asked++, new Promise((resolve) => waiting.push(() => resolve({ ok: true, userId: req.authorization! })))),
  });
  const first = gw.authorize(request({ authorization: 'alice' }));
  const second = gw.authorize(request({ authorization: 'bob' }));
  assert.equal(gw.stats.handshaking, 2);
  const r = await refusal(gw, request({ authorization: 'carol' }));
  assert.equal(r.status, 503);
  assert.equal(r.code, 'over_capacity');
  assert.ok(Number(r.headers['Retry-After']) >= 1);
  assert.equal(asked, 2, 'the refused token was never checked');
  assert.equal(gw.stats.refused.get('handshakes'), 1);
  // Checked but not open yet: still in flight.
  waiting.shift()!();
  const a = await first;
  assert.ok(a.ok);
  assert.deepEqual([gw.stats.handshaking, gw.stats.pending], [1, 1]);
  assert.equal((await refusal(gw, request({ authorization: 'carol' }))).status, 503);
  // Open: the place is free again.
  gw.open(a.conn, ops.socket());
  const third = gw.authorize(request({ authorization: 'carol' }));
  assert.equal(gw.stats.handshaking, 2);
  for (const w of waiting.splice(0)) w();
  assert.ok((await second).ok);
  assert.ok((await third).ok);
  assert.equal(gw.stats.handshaking, 0);
  assert.equal(gw.stats.refused.get('handshakes'), 2);
});

test('an onebox.v1 client beyond MAX_HANDSHAKES in flight is upgraded and closed 1013 over_capacity retry=N, never counted open', async (t) => {
  const waiting: Array<() => void> = [];
  const { gw, ops } = setup(t, { maxHandshakes: 1 }, {
    authenticate: (req) => new Promise((resolve) => waiting.push(() => resolve({ ok: true, userId: req.authorization! }))),
  });
  const first = gw.authorize(request());
  const d = await gw.authorize(request({ authorization: 'bob', protocols: 'onebox.v1' }));
  assert.ok(d.ok, 'accepted, to be closed');
  const sock = ops.socket();
  gw.open(d.conn, sock);
  assert.equal(sock.closes[0]!.code, CLOSE.tryAgainLater);
  assert.match(sock.closes[0]!.reason, /^over_capacity retry=([1-9]|10)$/);
  assert.equal(gw.stats.refused.get('handshakes'), 1);
  assert.equal(gw.stats.open, 0);
  waiting.shift()!();
  assert.ok((await first).ok);
});

test('a token check that throws gives its handshake place back', async (t) => {
  const { gw } = setup(t, { maxHandshakes: 1 }, { authenticate: () => Promise.reject(new Error('store down')) });
  await assert.rejects(gw.authorize(request()));
  assert.equal(gw.stats.handshaking, 0);
});

test('a draining gateway refuses upgrades 503 not_ready, also one whose token was checked while it began draining', async (t) => {
  let release: () => void = () => undefined;
  const { gw } = setup(t, {}, {
    authenticate: (req) => new Promise((resolve) => (release = () => resolve({ ok: true, userId: req.authorization! }))),
  });
  const during = gw.authorize(request());
  gw.closeAll(CLOSE.goingAway, 'shutdown');
  release();
  const d = await during;
  assert.ok(!d.ok);
  assert.equal(d.status, 503);
  assert.equal(JSON.parse(d.body).error.code, 'not_ready');
  const after = gw.authorize(request());
  release();
  const r = await after;
  assert.ok(!r.ok && r.status === 503);
  assert.equal(gw.stats.refused.get('draining'), 2);
  assert.equal(gw.stats.pending, 0);
});

test('authentication failures: unauthorized, invalid_token and token_expired are 401; store_unavailable is 503 with Retry-After', async (t) => {
  let answer: Authentication = { ok: true, userId: 'x' };
  const { gw } = setup(t, {}, { authenticate: () => Promise.resolve(answer) });
  for (const code of ['unauthorized', 'invalid_token', 'token_expired'] as const) {
    answer = { ok: false, code, message: code };
    const r = await refusal(gw, request());
    assert.equal(r.status, 401, code);
    assert.equal(r.code, code);
    assert.equal(r.headers['Retry-After'], undefined, 'a 401 is not retried');
  }
  answer = { ok: false, code: 'store_unavailable', message: 'down' };
  const r = await refusal(gw, request());
  assert.equal(r.status, 503);
  assert.equal(r.code, 'store_unavailable');
  assert.ok(Number(r.headers['Retry-After']) >= 1);
  assert.equal(gw.stats.refused.get('unauthorized'), 3);
  assert.equal(gw.stats.refused.get('store'), 1);
  assert.equal(gw.stats.pending, 0);
});

/** LocalLimits that counts what is taken and given back. */
class CountingLimits extends LocalLimits {
  acquired = 0;
  released = 0;
  failAcquire = false;
  override acquire(key: string, max: number): Promise<boolean> {
    if (this.failAcquire) return Promise.reject(new Error('supervisor gone'));
    return super.acquire(key, max).then((ok) => {
      if (ok) this.acquired++;
      return ok;
    });
  }
  override release(key: string): void {
    this.released++;
    super.release(key);
  }
}

test('past the per-address limit an upgrade is 503; a closed connection gives its slot back once', async (t) => {
  const limits = new CountingLimits();
  const { gw, connect } = setup(t, { maxConnectionsPerIp: 1 }, { limits });
  const { conn } = await connect('alice');
  const r = await refusal(gw, request({ authorization: 'bob' }));
  assert.equal(r.status, 503);
  assert.equal(gw.stats.refused.get('per_ip'), 1);
  assert.equal(gw.stats.pending, 0);
  assert.ok((await gw.authorize(request({ ip: '192.0.2.2' }))).ok, 'another address is not limited');
  gw.closed(conn, 1000);
  gw.closed(conn, 1000);
  assert.equal(limits.released, 1);
  await connect('bob');
});

test('a per-address table that cannot answer refuses the upgrade rather than admit it uncounted', async (t) => {
  const limits = new CountingLimits();
  limits.failAcquire = true;
  const { gw } = setup(t, { maxConnectionsPerIp: 5 }, { limits });
  const r = await refusal(gw, request());
  assert.equal(r.status, 503);
  assert.equal(gw.stats.pending, 0);
});

// --- open / abort ---------------------------------------------------------------------------

test('an authorized upgrade is pending until open, then open until closed', async (t) => {
  const { gw, ops } = setup(t);
  const d = await gw.authorize(request());
  assert.ok(d.ok);
  assert.deepEqual([gw.stats.pending, gw.stats.open], [1, 0]);
  gw.open(d.conn, ops.socket());
  assert.deepEqual([gw.stats.pending, gw.stats.open], [0, 1]);
  assert.equal(gw.registry.users.get('alice'), d.conn);
  gw.closed(d.conn, 1000);
  assert.deepEqual([gw.stats.pending, gw.stats.open], [0, 0]);
  assert.equal(gw.registry.users.size, 0);
  assert.equal(gw.stats.closes.get(1000), 1);
});

test('abort releases a pending upgrade exactly once, whatever the number of calls', async (t) => {
  const limits = new CountingLimits();
  const { gw } = setup(t, { maxConnectionsPerIp: 2 }, { limits });
  const d = await gw.authorize(request());
  assert.ok(d.ok);
  gw.abort(d.conn);
  gw.abort(d.conn);
  assert.deepEqual([gw.stats.pending, gw.stats.open], [0, 0]);
  assert.deepEqual([limits.acquired, limits.released], [1, 1]);
});

test('abort after open is a no-op', async (t) => {
  const limits = new CountingLimits();
  const { gw, connect } = setup(t, { maxConnectionsPerIp: 2 }, { limits });
  const { conn, sock } = await connect();
  gw.abort(conn);
  assert.deepEqual([gw.stats.pending, gw.stats.open], [0, 1]);
  assert.equal(limits.released, 0);
  assert.equal(sock.terminated, 0);
});

test('open after abort terminates the socket and counts nothing', async (t) => {
  const limits = new CountingLimits();
  const { gw, ops } = setup(t, { maxConnectionsPerIp: 2 }, { limits });
  const d = await gw.authorize(request());
  assert.ok(d.ok);
  gw.abort(d.conn);
  const sock = ops.socket();
  gw.open(d.conn, sock);
  assert.equal(sock.terminated, 1);
  assert.deepEqual([gw.stats.pending, gw.stats.open], [0, 0]);
  assert.equal(gw.registry.users.size, 0);
  assert.equal(limits.released, 1);
});

test('a second closed report does not count the connection out twice', async (t) => {
  const { gw, connect } = setup(t);
  const a = await connect('alice');
  await connect('bob');
  gw.closed(a.conn, 1006);
  gw.closed(a.conn, 1006);
  assert.equal(gw.stats.open, 1);
});

// --- frames ---------------------------------------------------------------------------------

test('a malformed frame is answered with its error frame and the connection stays', async (t) => {
  const { gw, connect, send } = setup(t, { maxJsonDepth: 3 });
  const { conn, sock } = await connect();
  const cases: Array<[string, string]> = [
    ['not json', 'bad_json'],
    ['[1]', 'bad_frame'],
    ['{"op":"nope","id":4}', 'unknown_op'],
    ['{"op":"sub","topic":"a b"}', 'invalid_topic'],
    ['{"op":"pub","topic":"chat.x","data":[[[1]]]}', 'json_too_deep'],
  ];
  for (const [text, code] of cases) {
    gw.message(conn, text, false);
    assert.equal(lastFrame(sock)?.code, code, text);
  }
  assert.equal(lastFrame(sock)?.op, 'error');
  send(conn, { op: 'ping', id: 9 });
  assert.deepEqual([lastFrame(sock)?.op, lastFrame(sock)?.id], ['pong', 9]);
  assert.equal(sock.closes.length, 0);
  assert.equal(gw.stats.messagesIn, 6);
});

test('a frame given as bytes is decoded as UTF-8 from its own view of the buffer', async (t) => {
  const { gw, connect } = setup(t);
  const { conn, sock } = await connect();
  const whole = Buffer.from(`xxxx{"op":"ping","id":"é"}yyyy`);
  gw.message(conn, whole.subarray(4, whole.length - 4), false);
  assert.deepEqual([lastFrame(sock)?.op, lastFrame(sock)?.id], ['pong', 'é']);
});

test('a binary frame closes the connection with 1003', async (t) => {
  const { gw, connect } = setup(t);
  const { conn, sock } = await connect();
  gw.message(conn, new Uint8Array([1, 2]), true);
  assert.deepEqual(sock.closes.map((c) => c.code), [CLOSE.unsupportedData]);
  assert.equal(sock.sent.length, 0);
});

test('a subscriber receives what is published to its topic; after unsub, nothing', async (t) => {
  const { connect, send } = setup(t);
  const a = await connect('alice');
  const b = await connect('bob');
  send(a.conn, { op: 'sub', topic: 'chat:room', id: 1 });
  assert.deepEqual(lastFrame(a.sock), { op: 'ack', id: 1, ack: 'sub', topic: 'chat:room' });
  send(b.conn, { op: 'pub', topic: 'chat:room', data: 'hi', id: 2 });
  assert.deepEqual(lastFrame(b.sock), { op: 'ack', id: 2, ack: 'pub', topic: 'chat:room' });
  assert.deepEqual(lastFrame(a.sock), { op: 'msg', topic: 'chat:room', ts: T0, data: 'hi', from: 'bob' });
  send(a.conn, { op: 'unsub', topic: 'chat:room', id: 3 });
  const before = a.sock.sent.length;
  send(b.conn, { op: 'pub', topic: 'chat:room', data: 'again' });
  assert.equal(a.sock.sent.length, before);
});

test('at the subscription cap a new topic is too_many_subscriptions; a topic already held and one after unsub are fine', async (t) => {
  const { connect, send } = setup(t, { maxSubscriptions: 2 });
  const { conn, sock } = await connect();
  send(conn, { op: 'sub', topic: 'chat:a' });
  send(conn, { op: 'sub', topic: 'chat:b' });
  send(conn, { op: 'sub', topic: 'chat:c', id: 'c1' });
  assert.deepEqual([lastFrame(sock)?.op, lastFrame(sock)?.code, lastFrame(sock)?.id], ['error', 'too_many_subscriptions', 'c1']);
  send(conn, { op: 'sub', topic: 'chat:a' });
  assert.equal(lastFrame(sock)?.op, 'ack', 'resubscribing to a held topic');
  send(conn, { op: 'unsub', topic: 'chat:a' });
  send(conn, { op: 'sub', topic: 'chat:c' });
  assert.equal(lastFrame(sock)?.op, 'ack');
});

test("another user's topic is forbidden_topic; one's own user topic is allowed", async (t) => {
  const { gw, connect, send } = setup(t);
  const { conn, sock } = await connect('alice');
  send(conn, { op: 'sub', topic: 'user:bob', id: 1 });
  assert.deepEqual([lastFrame(sock)?.code, lastFrame(sock)?.id], ['forbidden_topic', 1]);
  assert.equal(gw.registry.topics.has('user:bob'), false);
  send(conn, { op: 'sub', topic: 'user:alice', id: 2 });
  assert.equal(lastFrame(sock)?.op, 'ack');
});

test('publishing to a publish: none namespace is publish_forbidden and spends no token', async (t) => {
  const { connect, send } = setup(t, { wsPublishPerS: 1 });
  const { conn, sock } = await connect();
  for (let i = 0; i < 5; i++) send(conn, { op: 'pub', topic: 'public:news', data: i, id: i });
  assert.deepEqual(framesOf(sock).map((f) => f.code), Array(5).fill('publish_forbidden'));
  send(conn, { op: 'pub', topic: 'chat:a' });
  send(conn, { op: 'pub', topic: 'chat:a' });
  assert.deepEqual(framesOf(sock).slice(5).map((f) => f.op), ['ack', 'ack'], 'the burst of 2 is intact');
});

test('publish rate: a burst of twice the rate, then rate_limited; tokens refill at the rate, up to the burst', async (t) => {
  const { connect, send, advance } = setup(t, { wsPublishPerS: 5, idleTimeoutMs: 1e9 });
  const { conn, sock } = await connect();
  const pub = () => {
    send(conn, { op: 'pub', topic: 'chat:a', id: 'p' });
    const f = lastFrame(sock)!;
    return f.op === 'ack' ? 'ack' : String(f.code);
  };
  const burst = () => Array.from({ length: 11 }, pub);
  assert.deepEqual(burst(), [...Array(10).fill('ack'), 'rate_limited']);
  advance(150);
  assert.equal(pub(), 'rate_limited', 'three quarters of a token after 150 ms at 5/s');
  advance(50);
  assert.equal(pub(), 'ack', 'one token after 200 ms');
  assert.equal(pub(), 'rate_limited');
  advance(60_000);
  assert.deepEqual(burst(), [...Array(10).fill('ack'), 'rate_limited'], 'a long silence refills the burst, no more');
  assert.equal(lastFrame(sock)?.id, 'p');
});

test("a hub whose publish rejects: the frame is answered with an internal error, and the gateway keeps serving", async (t) => {
  const failing: Hub = {
    publish: () => Promise.reject(new Error('backplane exploded')),
    membership: () => Promise.resolve(),
  };
  const { gw, connect, send } = setup(t, {}, { createHub: () => failing });
  const a = await connect('alice');
  const b = await connect('bob');
  send(a.conn, { op: 'pub', topic: 'chat:a', id: 7 });
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.deepEqual(framesOf(a.sock).map((f) => [f.op, f.code, f.id]), [['ack', undefined, 7], ['error', 'internal', 7]]);
  assert.equal(gw.stats.frameFailures, 1);
  send(a.conn, { op: 'ping', id: 8 });
  send(b.conn, { op: 'sub', topic: 'chat:x', id: 9 });
  assert.equal(lastFrame(a.sock)?.op, 'pong');
  assert.equal(lastFrame(b.sock)?.op, 'ack');
});

test('a handler that throws: the frame is answered with an internal error, and the gateway keeps serving', async (t) => {
  const throwing: Hub = {
    publish: () => {
      throw new Error('sync failure');
    },
    membership: () => Promise.resolve(),
  };
  const labels: string[] = [];
  const { gw, connect, send } = setup(t, {}, { createHub: () => throwing, onActivity: (l) => labels.push(l) });
  const { conn, sock } = await connect();
  send(conn, { op: 'pub', topic: 'chat:a', id: 1 });
  assert.deepEqual([lastFrame(sock)?.op, lastFrame(sock)?.code, lastFrame(sock)?.id], ['error', 'internal', 1]);
  send(conn, { op: 'ping', id: 2 });
  assert.equal(lastFrame(sock)?.op, 'pong');
  assert.equal(gw.stats.frameFailures, 1);
  assert.deepEqual(labels, ['ws:pub', 'ws:ping']);
});

// --- backpressure ---------------------------------------------------------------------------

test('a send that leaves more than maxBufferedBytes queued closes the connection with 1013 once, counted, and nothing more is sent', async (t) => {
  const { gw, connect, send } = setup(t, { maxBufferedBytes: 4096 });
  const slow = await connect('alice');
  const peer = await connect('bob');
  send(slow.conn, { op: 'sub', topic: 'chat:a' });
  slow.sock.buffered = 4097;
  send(peer.conn, { op: 'pub', topic: 'chat:a', data: 1 });
  assert.deepEqual(slow.sock.closes.map((c) => c.code), [CLOSE.tryAgainLater]);
  assert.equal(gw.stats.slowConsumers, 1);
  const sent = slow.sock.sent.length;
  send(peer.conn, { op: 'pub', topic: 'chat:a', data: 2 });
  send(slow.conn, { op: 'ping' });
  await gw.hub.publish(out('user:alice', 'direct'));
  assert.equal(slow.sock.sent.length, sent);
  assert.equal(slow.sock.closes.length, 1);
  assert.equal(slow.sock.afterEnd, 0);
  assert.equal(gw.stats.slowConsumers, 1);
  assert.equal(gw.registry.topics.has('chat:a'), false);
});

test('a connection with exactly maxBufferedBytes queued is kept', async (t) => {
  const { connect, send } = setup(t, { maxBufferedBytes: 4096 });
  const { conn, sock } = await connect();
  sock.buffered = 4096;
  send(conn, { op: 'ping' });
  send(conn, { op: 'ping' });
  assert.equal(sock.sent.length, 2);
  assert.equal(sock.closes.length, 0);
});

test('a slow consumer dropped in the middle of a fan-out does not stop delivery to the subscribers after it', async (t) => {
  const { gw, connect, send } = setup(t);
  const subs = [await connect('a'), await connect('b'), await connect('c')];
  for (const s of subs) send(s.conn, { op: 'sub', topic: 'chat:a' });
  subs[1]!.sock.buffered = 1e9;
  assert.equal(await gw.hub.publish(out('chat:a', 'one')), 3);
  for (const s of subs) assert.deepEqual(lastFrame(s.sock), { op: 'msg', topic: 'chat:a', ts: 0, data: 'one' });
  assert.equal(await gw.hub.publish(out('chat:a', 'two')), 2);
  assert.equal(lastFrame(subs[0]!.sock)?.data, 'two');
  assert.equal(lastFrame(subs[1]!.sock)?.data, 'one');
  assert.equal(lastFrame(subs[2]!.sock)?.data, 'two');
});

// --- heartbeat and closing ------------------------------------------------------------------

test('each open connection is pinged once per ping interval', async (t) => {
  const { gw, connect, advance } = setup(t);
  const conns = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((u) => connect(u)));
  advance(1000);
  assert.deepEqual(conns.map((c) => c.sock.pings), [1, 1, 1, 1, 1]);
  advance(1000);
  assert.deepEqual(conns.map((c) => c.sock.pings), [2, 2, 2, 2, 2]);
  assert.equal(gw.stats.pingsSent, 10);
});

test('a silent connection is terminated on the first tick past the idle timeout; one that pongs or sends is kept', async (t) => {
  const { gw, connect, send, advance } = setup(t, { pingIntervalMs: 1000, idleTimeoutMs: 2500 });
  const silent = await connect('a');
  const pongs = await connect('b');
  const talks = await connect('c');
  for (let ms = 0; ms < 2500; ms += TICK_MS) {
    advance(TICK_MS);
    gw.pong(pongs.conn);
    send(talks.conn, { op: 'ping' });
  }
  assert.equal(silent.sock.terminated, 0, 'not at exactly the idle timeout');
  advance(TICK_MS);
  assert.equal(silent.sock.terminated, 1);
  assert.equal(gw.stats.idleTimeouts, 1);
  assert.deepEqual([pongs.sock.terminated, talks.sock.terminated], [0, 0]);
  const pings = silent.sock.pings;
  advance(2000);
  assert.equal(silent.sock.pings, pings, 'no ping after the termination');
  assert.equal(silent.sock.terminated, 1, 'terminated once');
});

test('a connection closed by the server and not reported closed within one ping interval is terminated on the tick', async (t) => {
  const { gw, connect, advance } = setup(t, { pingIntervalMs: 1000 });
  const stuck = await connect('a');
  const polite = await connect('b');
  gw.message(stuck.conn, new Uint8Array([0]), true);
  gw.message(polite.conn, new Uint8Array([0]), true);
  advance(500);
  gw.closed(polite.conn, CLOSE.unsupportedData);
  advance(475);
  assert.equal(stuck.sock.terminated, 0, 'not before one interval');
  advance(TICK_MS);
  assert.equal(stuck.sock.terminated, 1);
  assert.equal(polite.sock.terminated, 0, 'a connection reported closed is left alone');
  advance(3000);
  assert.equal(stuck.sock.terminated, 1, 'terminated once');
  assert.equal(stuck.sock.afterEnd, 0, 'no ping after the close');
});

test('closeAll closes every connection with the code and waitEmpty resolves when the last is reported closed', async (t) => {
  const { gw, connect } = setup(t);
  const conns = [await connect('a'), await connect('a'), await connect('b')];
  gw.closeAll(CLOSE.restart, 'restart');
  assert.deepEqual(conns.map((c) => c.sock.closes.map((x) => x.code)), [[1012], [1012], [1012]]);
  const empty = gw.waitEmpty(5000);
  for (const c of conns) gw.closed(c.conn, CLOSE.restart);
  assert.equal(await empty, true);
  assert.equal(gw.stats.closes.get(CLOSE.restart), 3);
});

test('closeAll does not close again a connection the server is already closing', async (t) => {
  const { gw, connect } = setup(t);
  const closing = await connect('a');
  const open = await connect('b');
  closing.sock.buffered = 1e9;
  await gw.hub.publish(out('user:a', 'x'));
  gw.closeAll(CLOSE.goingAway, 'shutdown');
  assert.deepEqual(closing.sock.closes.map((c) => c.code), [CLOSE.tryAgainLater]);
  assert.deepEqual(open.sock.closes.map((c) => c.code), [CLOSE.goingAway]);
});

test('waitEmpty answers false at its deadline when connections stay open, and terminateAll drops them', async (t) => {
  const { gw, connect } = setup(t);
  const c = await connect();
  gw.closeAll(CLOSE.goingAway, 'shutdown');
  const empty = gw.waitEmpty(1000);
  t.mock.timers.tick(1000);
  assert.equal(await empty, false);
  gw.terminateAll();
  assert.equal(c.sock.terminated, 1);
});

test('an upgrade opened after closeAll is closed with the drain code, so waitEmpty need not wait it out', async (t) => {
  const { gw, ops, connect } = setup(t);
  const early = await connect('a');
  // Bun runs `open` after `fetch` returned the upgrade: closeAll can come in between.
  const d = await gw.authorize(request({ authorization: 'late' }));
  assert.ok(d.ok);
  gw.closeAll(CLOSE.restart, 'server restarting');
  const sock = ops.socket();
  gw.open(d.conn, sock);
  assert.deepEqual(sock.closes.map((c) => c.code), [CLOSE.restart]);
  const empty = gw.waitEmpty(5000);
  for (const s of ops.sockets) assert.equal(s.closes.length, 1);
  gw.closed(early.conn, CLOSE.restart);
  gw.closed(d.conn, CLOSE.restart);
  assert.equal(await empty, true);
  assert.deepEqual([gw.stats.open, gw.stats.pending], [0, 0]);
});

// --- tokens on the socket: hello, auth, expiry, onebox.v1 refusals, revocation -------------

/** Admits `<user>@<exp>` as that user with that token expiry (seconds), `<user>#<sid>` with a session. */
const admitWithClaims = (token: string): Promise<Authentication> => {
  if (token === 'expired') return Promise.resolve({ ok: false, code: 'token_expired', message: 'token expired' });
  if (token === 'revoked') return Promise.resolve({ ok: false, code: 'session_revoked', message: 'session revoked' });
  const m = /^(\w+)(?:@(\d+))?(?:#(\w+))?$/.exec(token);
  if (!m) return Promise.resolve({ ok: false, code: 'invalid_token', message: 'bad token' });
  return Promise.resolve({ ok: true, userId: m[1]!, ...(m[2] && { exp: Number(m[2]) }), ...(m[3] && { sid: m[3] }) });
};
const claimsDeps: Partial<GatewayDeps> = {
  authenticate: (req) => (req.authorization ? admitWithClaims(req.authorization) : Promise.resolve({ ok: false, code: 'unauthorized', message: 'no token' })),
  authenticateToken: admitWithClaims,
};
const T0_S = T0 / 1000;

test('hello is the first frame of a connection: protocol version, ping interval, server time and the token expiry', async (t) => {
  const { connect } = setup(t, {}, claimsDeps);
  const { sock } = await connect(`alice@${T0_S + 900}`);
  assert.deepEqual(JSON.parse(sock.hello!), { op: 'hello', v: 1, pingIntervalMs: OPTIONS.pingIntervalMs, ts: T0, exp: T0_S + 900 });
  assert.deepEqual(sock.sent, [], 'nothing before or with it');
});

test('a connection whose token expires is closed with 4001 on the heartbeat tick; an auth op with a fresh token keeps it open', async (t) => {
  const { gw, connect, send, advance } = setup(t, {}, claimsDeps);
  const stale = await connect(`alice@${T0_S + 2}`);
  const renewed = await connect(`bob@${T0_S + 2}`);
  send(renewed.conn, { op: 'auth', id: 'a1', token: `bob@${T0_S + 900}` });
  await Promise.resolve();
  assert.deepEqual(lastFrame(renewed.sock), { op: 'ack', id: 'a1', ack: 'auth', exp: T0_S + 900 });
  advance(1900);
  assert.deepEqual(stale.sock.closes, [], 'not before its exp');
  // Past exp, within one ping interval (every connection is pinged once per interval).
  advance(1000 + 25);
  assert.deepEqual(stale.sock.closes, [{ code: CLOSE.tokenExpired, reason: 'token_expired' }]);
  assert.deepEqual(renewed.sock.closes, []);
  assert.equal(gw.stats.expired, 1);
});

test('an auth op with a refused token, or another user\'s, is an error frame and the connection keeps its old token', async (t) => {
  const { connect, send } = setup(t, {}, claimsDeps);
  const { conn, sock } = await connect(`alice@${T0_S + 60}`);
  const answers: Array<Record<string, unknown> | undefined> = [];
  for (const [id, token] of [[1, 'expired'], [2, 'revoked'], [3, '!!'], [4, `bob@${T0_S + 900}`]] as const) {
    send(conn, { op: 'auth', id, token });
    await Promise.resolve();
    answers.push(lastFrame(sock));
  }
  assert.deepEqual(
    answers.map((f) => [f?.op, f?.id, f?.code]),
    [
      ['error', 1, 'token_expired'],
      ['error', 2, 'session_revoked'],
      ['error', 3, 'invalid_token'],
      ['error', 4, 'invalid_token'],
    ],
  );
  assert.equal(conn.exp, T0_S + 60);
  send(conn, { op: 'auth', id: 5 });
  assert.equal(lastFrame(sock)?.code, 'bad_frame', 'an auth op without a token');
});

test('one auth op at a time per connection: another sent before the answer is rate_limited and never verified; the next after it is served', async (t) => {
  const pending: Array<(a: Authentication) => void> = [];
  const { connect, send } = setup(t, {}, { ...claimsDeps, authenticateToken: () => new Promise((resolve) => pending.push(resolve)) });
  const { conn, sock } = await connect(`alice@${T0_S + 60}`);
  send(conn, { op: 'auth', id: 1, token: 'first' });
  send(conn, { op: 'auth', id: 2, token: 'second' });
  assert.deepEqual([lastFrame(sock)?.op, lastFrame(sock)?.id, lastFrame(sock)?.code], ['error', 2, 'rate_limited']);
  assert.equal(pending.length, 1, 'the second never reached verification');
  pending[0]!({ ok: true, userId: 'alice', exp: T0_S + 900 });
  for (let i = 0; i < 3; i++) await Promise.resolve();
  assert.deepEqual(lastFrame(sock), { op: 'ack', id: 1, ack: 'auth', exp: T0_S + 900 });
  send(conn, { op: 'auth', id: 3, token: 'third' });
  assert.equal(pending.length, 2, 'the one after the answer is verified');
});

test('an onebox.v1 client gets refusals as close codes: 4003 for a bad or missing token, 4001 for an expired one, 1013 with retry at the ceiling', async (t) => {
  const { gw, ops, connect } = setup(t, { maxConnections: 2 }, claimsDeps);
  const v1 = { protocols: 'chat, onebox.v1' };
  const opened = await connect('alice', v1);
  const closes: Array<{ code: number; reason: string }> = [];
  for (const authorization of [null, '!!', 'expired', 'revoked', 'bob']) {
    // The last one meets the ceiling.
    if (authorization === 'bob') await connect('carol');
    const d = await gw.authorize(request({ authorization, ...v1 }));
    assert.ok(d.ok, 'accepted, to be closed');
    assert.equal(d.protocol, 'onebox.v1');
    const sock = ops.socket();
    gw.open(d.conn, sock);
    assert.equal(sock.hello, undefined, 'a refusal gets no hello');
    closes.push(...sock.closes);
    gw.closed(d.conn, sock.closes[0]!.code);
  }
  assert.deepEqual(closes.slice(0, 4), [
    { code: CLOSE.revoked, reason: 'unauthorized' },
    { code: CLOSE.revoked, reason: 'invalid_token' },
    { code: CLOSE.tokenExpired, reason: 'token_expired' },
    { code: CLOSE.revoked, reason: 'session_revoked' },
  ]);
  assert.equal(closes[4]!.code, CLOSE.tryAgainLater);
  assert.match(closes[4]!.reason, /^over_capacity retry=([1-9]|10)$/);
  assert.equal(gw.stats.open, 2, 'refusals are never counted open');
  assert.equal(gw.stats.refusedByClose, 5);
  assert.equal(opened.sock.closes.length, 0);
  // Without the subprotocol the same refusal is the HTTP status.
  assert.deepEqual((await refusal(gw, request({ authorization: 'bob' }))).status, 503);
});

test('an accepted upgrade selects onebox.v1 only when offered', async (t) => {
  const { gw } = setup(t, {}, claimsDeps);
  const offered = await gw.authorize(request({ protocols: 'onebox.v1' }));
  const plain = await gw.authorize(request({ protocols: 'chat' }));
  assert.ok(offered.ok && plain.ok);
  assert.equal(offered.protocol, 'onebox.v1');
  assert.equal(plain.protocol, undefined);
});

test('refusals by close are bounded: past REFUSING_MAX in flight the answer is the HTTP status, and an aborted or closed one frees its place', async (t) => {
  const { gw, ops } = setup(t, {}, claimsDeps);
  const req = request({ authorization: null, protocols: 'onebox.v1' });
  const held = [];
  for (let i = 0; i < REFUSING_MAX; i++) {
    const d = await gw.authorize(req);
    assert.ok(d.ok);
    held.push(d.conn);
  }
  assert.equal((await refusal(gw, req)).status, 401, 'over the bound: HTTP');
  const sock = ops.socket();
  gw.open(held[1]!, sock);
  assert.equal((await refusal(gw, req)).status, 401, 'an open refusal still holds its descriptor');
  gw.abort(held[0]!);
  gw.closed(held[1]!, sock.closes[0]!.code);
  const d1 = await gw.authorize(req);
  const d2 = await gw.authorize(req);
  assert.ok(d1.ok && d2.ok, 'the aborted and the closed refusal freed two places');
  assert.ok(!(await gw.authorize(req)).ok);
});

test('closeUserConnections closes that user\'s connections (all, or one session\'s) with the code given, and no one else\'s', async (t) => {
  const { gw, connect } = setup(t, {}, claimsDeps);
  const phone = await connect('alice#s1');
  const laptop = await connect('alice#s2');
  const other = await connect('bob#s1');
  assert.equal(gw.closeUserConnections('alice', CLOSE.revoked, 'session_revoked', (c) => c.sid === 's1'), 1);
  assert.deepEqual(phone.sock.closes, [{ code: CLOSE.revoked, reason: 'session_revoked' }]);
  assert.deepEqual(laptop.sock.closes, []);
  assert.equal(gw.closeUserConnections('alice', CLOSE.revoked, 'session_revoked'), 1, 'a closing connection is not closed twice');
  assert.deepEqual(laptop.sock.closes, [{ code: CLOSE.revoked, reason: 'session_revoked' }]);
  assert.deepEqual(other.sock.closes, []);
  assert.equal(gw.closeUserConnections('nobody', CLOSE.revoked, 'session_revoked'), 0);
});
