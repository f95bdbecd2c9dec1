/**
 * Delivery v2 end to end (issue 13, "Must hold"): receipts decide the push, a half-dead
 * socket still gets its push, a crash between commit and fan-out loses nothing, a
 * reconnecting client resumes with `since` (across a restart too, and `recovered:false`
 * once the log is trimmed), and idempotency keys publish once. Each case runs once per
 * engine on SQLite; the idempotency and recovery cases once more on PostgreSQL (Node). The blue-green deploy case
 * lives in deploy.test.ts, the WORKERS=3 + Redis case in cluster.test.ts.
 */
import { DEFAULT_NAMESPACES } from '../../src/realtime/channels.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, ENGINES, signup, startServer, type EngineName, type Running } from '../kit/server.js';
import { startFakePush, type FakePush, type Received } from '../kit/fake-push.js';
import { connectWs, type Client } from '../kit/ws.js';
import { createTestDatabase } from '../kit/pg.js';
import { eventually } from '../kit/eventually.js';

const admin = { token: ADMIN_TOKEN };
const hex = (prefix: string) => (prefix + 'a'.repeat(64)).slice(0, 64);
/** Long enough that a receipt, batched for up to 250 ms, lands well before it. */
const FALLBACK_MS = 800;
const POLL_MS = 100;
let topicSeq = 0;
const fresh = (ns: string) => `${ns}:${process.pid}-${Date.now()}-${topicSeq++}`;

/** Every frame a client receives, in arrival order (Client.next takes frames out of its queue). */
function record(c: Client): Array<Record<string, any>> {
  const all: Array<Record<string, any>> = [];
  c.ws.on('message', (data) => all.push(JSON.parse(data.toString()) as Record<string, any>));
  return all;
}

const offsetsOf = (frames: Array<Record<string, any>>, topic: string) =>
  frames.filter((f) => f.op === 'msg' && f.topic === topic).map((f) => f.offset as number);

/** The notification id a push carries, per service (apns.ts, fcm.ts, web-push.ts). */
const notificationId = (r: Received): unknown => (r.service === 'apns' ? r.payload.onebox.id : r.service === 'fcm' ? r.payload.data.onebox_id : r.payload.id);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Subscribe and return the ack. */
async function sub(c: Client, topic: string, since?: { offset: number; epoch: string }): Promise<Record<string, any>> {
  const id = `sub-${topicSeq++}`;
  c.send({ op: 'sub', id, topic, ...(since ? { since } : {}) });
  const ack = await c.next((f) => f.id === id);
  assert.equal(ack.op, 'ack', JSON.stringify(ack));
  return ack;
}

/** Publish `n` messages and wait for their acks; returns their offsets in ack order. */
async function publish(c: Client, topic: string, n: number, tag: string): Promise<number[]> {
  const ids = range(1, n).map((i) => `${tag}-${i}`);
  for (const id of ids) c.send({ op: 'pub', id, topic, data: { id } });
  const offsets: number[] = [];
  for (const id of ids) {
    const ack = await c.next((f) => f.id === id);
    assert.equal(ack.ack, 'pub', JSON.stringify(ack));
    offsets.push(ack.offset);
  }
  return offsets;
}

function channelsFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'onebox-channels-')), 'channels.json');
  // Rooms open to any signed-in user (access rules are channels.test.ts's), and `short:`
  // keeps 10 messages: publishing more trims the oldest (RETENTION_INTERVAL_MS below).
  const open = { subscribe: 'authenticated', publish: 'authenticated' } as const;
  const namespaces = {
    ...DEFAULT_NAMESPACES,
    room: { ...DEFAULT_NAMESPACES.room, ...open },
    short: { ...open, history: { size: 10, ttlS: 3600 }, recover: true },
  };
  writeFileSync(file, JSON.stringify({ namespaces }));
  return file;
}

const serverEnv = (extra: Record<string, string> = {}) => ({
  TEST_MODE: 'true',
  PUSH_FALLBACK_MS: String(FALLBACK_MS),
  PUSH_POLL_MS: String(POLL_MS),
  PUSH_BACKOFF_BASE_MS: '50',
  WS_PUBLISH_PER_S: '1000',
  RETENTION_INTERVAL_MS: '200',
  CHANNELS_FILE: channelsFile(),
  ...extra,
});

/** The recovery cases: the same on every engine and store. */
function recoveryCases(get: () => Running) {
  test('since after 50 missed messages: all 50 in order, then live ones published during the replay, no repeat', async () => {
    const s = get();
    const topic = fresh('room');
    const u = await signup(s.url);
    const pub = await connectWs(s.wsUrl, u.token);
    const first = await connectWs(s.wsUrl, u.token);
    const { offset: start, epoch } = await sub(first, topic);
    assert.equal(start, 0);
    assert.equal(typeof epoch, 'string');
    first.close();
    // Another subscriber keeps the topic live on the server while the client is away.
    const watcher = await connectWs(s.wsUrl, u.token);
    const watched = record(watcher);
    await sub(watcher, topic);

    assert.deepEqual(await publish(pub, topic, 50, 'missed'), range(1, 50));
    const again = await connectWs(s.wsUrl, u.token);
    const frames = record(again);
    const subId = 'resume';
    // Live messages race the replay, one commit after another: the hand-over must neither
    // drop nor repeat them.
    const during = (async () => {
      const offsets: number[] = [];
      for (let i = 1; i <= 20; i++) offsets.push(...(await publish(pub, topic, 1, `during-${i}`)));
      return offsets;
    })();
    again.send({ op: 'sub', id: subId, topic, since: { offset: 0, epoch } });
    assert.deepEqual(await during, range(51, 70));
    await eventually(() => offsetsOf(frames, topic).length >= 70, { what: '70 messages on the resumed connection' });
    assert.deepEqual(await publish(pub, topic, 1, 'after'), [71]);
    await eventually(() => offsetsOf(frames, topic).includes(71), { what: 'the live message after the replay' });

    const ackAt = frames.findIndex((f) => f.id === subId);
    assert.deepEqual([frames[ackAt]!.ack, frames[ackAt]!.recovered, frames[ackAt]!.epoch], ['sub', true, epoch]);
    assert.ok(frames.findIndex((f) => f.op === 'msg') > ackAt, 'the ack comes before the replay');
    assert.deepEqual(offsetsOf(frames, topic), range(1, 71));
    const data = frames.filter((f) => f.op === 'msg').map((f) => f.data.id as string);
    assert.deepEqual(data.slice(0, 50), range(1, 50).map((i) => `missed-${i}`));
    assert.deepEqual(offsetsOf(watched, topic), range(1, 71));
    for (const c of [pub, again, watcher]) c.close();
  });

  test('since on the user channel: a notification that came live before the sub is not replayed again', async () => {
    const s = get();
    const v = await signup(s.url);
    const topic = `user:${v.id}`;
    const notify = async (title: string) => (await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title } })).body.offset as number;
    const first = await connectWs(s.wsUrl, v.token);
    const { epoch } = await sub(first, topic);
    first.close();
    for (let i = 1; i <= 50; i++) assert.equal(await notify(`missed ${i}`), i);
    const back = await connectWs(s.wsUrl, v.token);
    const frames = record(back);
    // The user's channel reaches every connection without a sub: this one arrives live first.
    assert.equal(await notify('before the sub'), 51);
    await eventually(() => offsetsOf(frames, topic).includes(51), { what: 'the live notification' });
    const ack = await sub(back, topic, { offset: 0, epoch });
    assert.deepEqual([ack.recovered, ack.offset], [true, 51]);
    assert.equal(await notify('after'), 52);
    await eventually(() => offsetsOf(frames, topic).includes(52), { what: 'the notification after the replay' });
    assert.deepEqual(offsetsOf(frames, topic), [51, ...range(1, 50), 52]);
    back.close();
  });

  test('since across a restart: the epoch is stable and the missed messages are replayed', async () => {
    const s = get();
    const topic = fresh('room');
    const u = await signup(s.url);
    const pub = await connectWs(s.wsUrl, u.token);
    const { epoch } = await sub(pub, topic);
    assert.deepEqual(await publish(pub, topic, 5, 'seen'), range(1, 5));
    pub.close();
    const c = await connectWs(s.wsUrl, u.token);
    await sub(c, topic);
    assert.deepEqual(await publish(c, topic, 50, 'missed'), range(6, 55));
    c.close();

    await s.restart();
    const back = await connectWs(s.wsUrl, u.token);
    const frames = record(back);
    const ack = await sub(back, topic, { offset: 5, epoch });
    assert.deepEqual([ack.recovered, ack.epoch, ack.offset], [true, epoch, 55]);
    await eventually(() => offsetsOf(frames, topic).length >= 50, { what: 'the 50 missed messages after the restart' });
    assert.deepEqual(await publish(back, topic, 1, 'live'), [56]);
    await eventually(() => offsetsOf(frames, topic).includes(56), { what: 'the live message after the replay' });
    assert.deepEqual(offsetsOf(frames, topic), range(6, 56));
    back.close();
  });

  test('since older than what the log keeps: recovered:false, no replay, live messages follow', async () => {
    const s = get();
    const topic = fresh('short');
    const u = await signup(s.url);
    const c = await connectWs(s.wsUrl, u.token);
    const { epoch } = await sub(c, topic);
    assert.deepEqual(await publish(c, topic, 30, 'm'), range(1, 30));
    // The retention pass trims the topic to its 10 newest (21..30).
    await eventually(
      async () => {
        const id = `h-${Math.random()}`;
        c.send({ op: 'history', id, topic, since: { offset: 5, epoch }, limit: 100 });
        return (await c.next((f) => f.id === id)).recovered === false;
      },
      { what: 'the log of the short: topic to be trimmed', intervalMs: 100 },
    );
    const late = await connectWs(s.wsUrl, u.token);
    const frames = record(late);
    const lost = await sub(late, topic, { offset: 5, epoch });
    assert.deepEqual([lost.recovered, lost.offset, lost.epoch], [false, 30, epoch]);
    const other = await connectWs(s.wsUrl, u.token);
    const kept = await sub(other, topic, { offset: 25, epoch });
    assert.equal(kept.recovered, true, 'an offset still kept recovers');
    const otherFrames = record(other);
    assert.deepEqual(await publish(c, topic, 1, 'live'), [31]);
    await eventually(() => offsetsOf(frames, topic).includes(31), { what: 'the live message after recovered:false' });
    assert.deepEqual(offsetsOf(frames, topic), [31], 'nothing replayed');
    await eventually(() => offsetsOf(otherFrames, topic).includes(31), { what: 'the live message after the kept replay' });
    for (const x of [c, late, other]) x.close();
  });
}

/** The idempotency cases: the store decides which of concurrent requests with one key wins. */
function idempotencyCases(get: () => Running) {
  test('10 concurrent retries of one notify with one Idempotency-Key: one message, one offset, one answer', async () => {
    const s = get();
    const v = await signup(s.url);
    const ws = await connectWs(s.wsUrl, v.token);
    const frames = record(ws);
    const topic = `user:${v.id}`;
    const key = `k-${Date.now()}`;
    const body = { userId: v.id, title: 'once' };
    const rs = await Promise.all(
      range(1, 10).map(() => api(s.url, 'POST', '/v1/notify', { ...admin, body, headers: { 'idempotency-key': key } })),
    );
    assert.deepEqual(rs.map((r) => r.status), Array(10).fill(202));
    for (const r of rs) assert.deepEqual(r.body, rs[0]!.body);
    assert.equal(rs[0]!.body.offset, 1);
    const conflict = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { ...body, title: 'other' }, headers: { 'idempotency-key': key } });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error.code, 'idempotency_conflict');
    // A later notify takes the next offset and is the next message on the socket: no repeat between.
    const next = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'next' } });
    assert.equal(next.body.offset, 2);
    await eventually(() => offsetsOf(frames, topic).includes(2), { what: 'the next notification' });
    assert.deepEqual(offsetsOf(frames, topic), [1, 2]);
    ws.close();
  });

  test('pub with one key 10 times: one offset, published once; another content: idempotency_conflict', async () => {
    const s = get();
    const topic = fresh('room');
    const u = await signup(s.url);
    const p = await connectWs(s.wsUrl, u.token);
    const p2 = await connectWs(s.wsUrl, u.token);
    const reader = await connectWs(s.wsUrl, u.token);
    const frames = record(reader);
    await sub(reader, topic);
    for (let i = 0; i < 10; i++) (i % 2 ? p2 : p).send({ op: 'pub', id: `k${i}`, topic, data: { n: 1 }, key: 'client-key-1' });
    const acks = await Promise.all(range(0, 9).map((i) => (i % 2 ? p2 : p).next((f) => f.id === `k${i}`)));
    assert.deepEqual(acks.map((a) => [a.ack, a.offset]), Array(10).fill(['pub', 1]));
    p.send({ op: 'pub', id: 'other', topic, data: { n: 2 }, key: 'client-key-1' });
    assert.equal((await p.next((f) => f.id === 'other')).code, 'idempotency_conflict');
    assert.deepEqual(await publish(p, topic, 1, 'next'), [2]);
    await eventually(() => offsetsOf(frames, topic).includes(2), { what: 'the next message' });
    assert.deepEqual(offsetsOf(frames, topic), [1, 2]);
    for (const x of [p, p2, reader]) x.close();
  });
}

for (const engine of ENGINES) {
  describe(`delivery v2 on ${engine} with SQLite`, () => {
    let s: Running;
    let push: FakePush;
    before(async () => {
      push = await startFakePush();
      s = await startServer(engine, { ...push.env, ...serverEnv() });
    });
    after(async () => {
      await s.stop();
      await push.close();
    });

    test('a client that reads and acknowledges every notification gets no push (100 in a row)', async () => {
      const v = await signup(s.url);
      const sub = push.webSubscription();
      const tokens = [hex('c1'), 'fcm-reader-0123456789', sub.endpoint.split('/').pop()!];
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'ios', token: tokens[0] } });
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'android', token: tokens[1] } });
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'web', token: sub } });
      const ws = await connectWs(s.wsUrl, v.token);
      const topic = `user:${v.id}`;
      // The app: handle each message, then acknowledge the highest contiguous offset.
      let handled = 0;
      ws.ws.on('message', (raw) => {
        const f = JSON.parse(raw.toString()) as Record<string, any>;
        if (f.op !== 'msg' || f.topic !== topic) return;
        assert.equal(f.offset, handled + 1, 'in order, no gap');
        handled = f.offset;
        ws.send({ op: 'recv', topic, offset: handled });
      });
      const ids: string[] = [];
      for (let i = 1; i <= 100; i++) {
        const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: `n${i}` } });
        assert.equal(r.status, 202);
        assert.deepEqual([r.body.offset, r.body.live, r.body.queued], [i, 1, 3]);
        ids.push(r.body.id);
      }
      const lastAt = Date.now();
      await eventually(() => handled === 100, { what: 'the client to handle 100 notifications' });
      await eventually(
        async () => (await api(s.url, 'GET', `/v1/notifications/${ids[99]}`, admin)).body.state === 'received',
        { what: 'the last notification to be received' },
      );
      // Absence takes waiting: well past the fallback and a few outbox polls.
      await sleep(Math.max(0, lastAt + FALLBACK_MS + 5 * POLL_MS - Date.now()));
      assert.deepEqual(push.received.filter((x) => tokens.includes(x.token)), []);
      for (const id of ids) {
        const st = (await api(s.url, 'GET', `/v1/notifications/${id}`, admin)).body;
        assert.equal(st.state, 'received', id);
        assert.deepEqual(st.rows.map((r: any) => r.status), ['received', 'received', 'received'], id);
      }
      ws.close();
    });

    test('a connected client that never reads: the push goes out after PUSH_FALLBACK_MS, once per device', async () => {
      const v = await signup(s.url);
      const sub = push.webSubscription();
      const tokens = [hex('d1'), 'fcm-halfdead-0123456789', sub.endpoint.split('/').pop()!];
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'ios', token: tokens[0] } });
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'android', token: tokens[1] } });
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'web', token: sub } });
      const ws = await connectWs(s.wsUrl, v.token);
      // A half-dead phone: the socket stays open, nothing is read (so nothing acknowledged).
      (ws.ws as any)._socket.pause();
      const t0 = Date.now();
      const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'half-dead' } });
      assert.equal(r.status, 202);
      assert.ok(r.body.live >= 1, 'counted live');
      assert.equal(r.body.queued, 3);
      const arrived: number[] = [];
      for (const token of tokens) {
        const got = await push.waitFor((x) => x.token === token && x.status > 0);
        arrived.push(Date.now() - t0);
        assert.equal(notificationId(got), r.body.id);
      }
      assert.ok(Math.min(...arrived) >= FALLBACK_MS, `no push before the fallback (${arrived.join(', ')} ms)`);
      await eventually(async () => (await api(s.url, 'GET', `/v1/notifications/${r.body.id}`, admin)).body.state === 'pushed', {
        what: 'the notification to read pushed',
      });
      await sleep(FALLBACK_MS);
      for (const token of tokens) assert.equal(push.received.filter((x) => x.token === token).length, 1, token);
      ws.close();
    });

    idempotencyCases(() => s);
    recoveryCases(() => s);
  });

  describe(`kill -9 between commit and fan-out on ${engine}`, () => {
    crashCase(engine);
  });
}

function crashCase(engine: EngineName) {
  let push: FakePush;
  let s: Running | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), `onebox-crash-${engine}-`));
  before(async () => {
    push = await startFakePush();
  });
  after(async () => {
    await s?.stop();
    await push.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the committed notification is replayed by since after the restart, and pushed or received', async () => {
    const env = { ...push.env, ...serverEnv(), DATA_DIR: dataDir };
    s = await startServer(engine, { ...env, FAULT_CRASH_AFTER_COMMIT: 'true' });
    const v = await signup(s.url);
    const token = hex('e1');
    await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'ios', token } });
    const topic = `user:${v.id}`;
    const ws = await connectWs(s.wsUrl, v.token);
    const { epoch, offset } = await sub(ws, topic);
    assert.equal(offset, 0);
    await assert.rejects(api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'crash' } }));
    assert.equal((await s.exited).signal, 'SIGKILL');
    await ws.waitClosed();
    assert.equal(offsetsOf(ws.frames, topic).length, 0, 'never fanned out');

    s = await startServer(engine, env);
    const back = await connectWs(s.wsUrl, v.token);
    const ack = await sub(back, topic, { offset: 0, epoch });
    assert.deepEqual([ack.recovered, ack.epoch, ack.offset], [true, epoch, 1]);
    const m = await back.next((f) => f.op === 'msg' && f.topic === topic);
    assert.deepEqual([m.offset, m.data.title], [1, 'crash']);
    back.send({ op: 'recv', topic, offset: 1 });
    // Its push row is due at PUSH_FALLBACK_MS after the commit: sent, or cancelled by the receipt.
    const state = await eventually(
      async () => {
        const list = await api(s!.url, 'GET', `/v1/notifications/${m.data.id}`, admin);
        return ['received', 'pushed'].includes(list.body.state) && (list.body.state as string);
      },
      { what: 'the notification to be received or pushed' },
    );
    if (state === 'pushed') assert.ok(push.received.some((x) => x.token === token && x.payload.onebox.offset === 1));
    back.close();
  });
}

describe('delivery v2 idempotency and recovery on PostgreSQL', () => {
  let s: Running;
  let drop: () => Promise<void>;
  before(async () => {
    const db = await createTestDatabase();
    drop = db.drop;
    s = await startServer('node', serverEnv({ DATABASE_URL: db.url }));
  });
  after(async () => {
    await s.stop();
    await drop();
  });
  idempotencyCases(() => s);
  recoveryCases(() => s);
});
