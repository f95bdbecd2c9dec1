/**
 * The SDK against a real onebox on each engine (SQLite), over real sockets (`ws` as the
 * WebSocket): a server restart, a deploy's 1012 drain to a new process behind one address, a
 * TCP connection that goes silent (the watchdog finds it), 100 messages published while the
 * client is paused, and receipts deciding the push (delivery v2's fake push service).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { ADMIN_TOKEN, CHAT_NAMESPACE, ENGINES, JWT_SECRET, api, signup, startServer, type EngineName, type Running } from '../../test/kit/server.js';
import { startFakePush, type FakePush } from '../../test/kit/fake-push.js';
import { eventually } from '../../test/kit/eventually.js';
import { Onebox, type ConnectionState, type Message, type OneboxOptions, type StateInfo } from '../src/index.js';
import { startProxy, type TcpProxy } from './tcp-proxy.js';

/** Short intervals so that dead-socket detection and the push fallback take a second, not a minute. */
const PING_INTERVAL_MS = 400;
const FALLBACK_MS = 800;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
let seq = 0;
const fresh = () => `chat:sdk-${process.pid}-${Date.now()}-${seq++}`;

const serverEnv = (push?: FakePush): Record<string, string> => ({
  ...(push ? { ...push.env, TEST_MODE: 'true', PUSH_FALLBACK_MS: String(FALLBACK_MS), PUSH_POLL_MS: '100', PUSH_BACKOFF_BASE_MS: '50' } : {}),
  WS_PUBLISH_PER_S: '1000',
  PING_INTERVAL_MS: String(PING_INTERVAL_MS),
  IDLE_TIMEOUT_MS: String(PING_INTERVAL_MS * 4),
});

/** An access token of this user expiring in `inS` seconds (negative: already expired), signed as the server does. */
const accessToken = async (userId: string, inS: number) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuer('onebox')
    .setAudience('onebox:access')
    .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
    .setExpirationTime(Math.floor(Date.now() / 1000) + inS)
    .sign(new TextEncoder().encode(JWT_SECRET));

/** An SDK client with test-sized backoff, its state history, and its close in `after`. */
class Clients {
  private readonly all: Onebox[] = [];

  open(url: string, token: string, opts: Partial<OneboxOptions> = {}): { ob: Onebox; states: Array<[ConnectionState, StateInfo]> } {
    const ob = new Onebox({
      url,
      getToken: () => token,
      WebSocket,
      backoff: { baseMs: 100, capMs: 1000, restartSpreadMs: 300 },
      pingIntervalMs: PING_INTERVAL_MS,
      ...opts,
    });
    const states: Array<[ConnectionState, StateInfo]> = [];
    ob.on('state', (s, info) => states.push([s, info]));
    this.all.push(ob);
    return { ob, states };
  }

  closeAll(): void {
    for (const ob of this.all.splice(0)) ob.close();
  }
}

const connected = (ob: Onebox, what: string) => eventually(() => ob.state === 'connected', { what: `${what} to be connected` });

/** Subscribe (the handler records offsets) and wait until the server answered. */
async function subscribed(ob: Onebox, topic: string, got: number[]): Promise<void> {
  const sub = ob.subscribe(topic, (m: Message) => got.push(m.offset!));
  const answer = new Promise<string | undefined>((resolve) => {
    sub.on('subscribed', () => resolve(undefined));
    sub.on('error', (e) => resolve(e.code));
  });
  assert.equal(await eventually(answer, { what: `the subscription of ${topic} to be answered` }), undefined);
}

for (const engine of ENGINES) {
  describe(`onebox-client against onebox on ${engine}`, () => {
    let s: Running;
    let push: FakePush;
    const clients = new Clients();
    before(async () => {
      push = await startFakePush();
      s = await startServer(engine, serverEnv(push), CHAT_NAMESPACE);
    });
    after(async () => {
      clients.closeAll();
      await s.stop();
      await push.close();
    });

    test('server restart: the client reconnects by itself; publishes made while the server is down are sent once it is back; every message once, in order', async () => {
      const u = await signup(s.url);
      const topic = fresh();
      const reader = clients.open(s.wsUrl, u.token);
      const writer = clients.open(s.wsUrl, u.token);
      const got: number[] = [];
      await subscribed(reader.ob, topic, got);
      await connected(writer.ob, 'the writer');
      for (let i = 1; i <= 5; i++) assert.equal((await writer.ob.publish(topic, { i })).offset, i);
      await eventually(() => got.length === 5, { what: 'the first 5 messages' });

      const restarting = s.restart();
      await eventually(() => writer.ob.state !== 'connected', { what: 'the writer to see the server go' });
      const during = range(6, 10).map((i) => writer.ob.publish(topic, { i }));
      await restarting;
      assert.deepEqual((await Promise.all(during)).map((r) => r.offset), range(6, 10));
      await eventually(() => got.length >= 10, { what: 'the 5 messages published across the restart' });
      assert.deepEqual(got, range(1, 10));
      assert.ok(reader.states.some(([st, info]) => st === 'disconnected' && info.code === 1001), 'the reader saw the 1001 shutdown close');
      assert.ok(reader.states.slice(-3).some(([st]) => st === 'connected'), `connected again: ${JSON.stringify(reader.states)}`);
    });

    test('100 messages published while the client is paused: after resume() all 100 arrive once, in order', async () => {
      const u = await signup(s.url);
      const topic = fresh();
      const reader = clients.open(s.wsUrl, u.token);
      const writer = clients.open(s.wsUrl, u.token);
      const got: number[] = [];
      await subscribed(reader.ob, topic, got);
      await connected(writer.ob, 'the writer');
      assert.equal((await writer.ob.publish(topic, 0)).offset, 1);
      await eventually(() => got.length === 1, { what: 'the first message' });
      reader.ob.pause();
      assert.equal(reader.ob.state, 'disconnected');
      const offsets = await Promise.all(range(1, 100).map((i) => writer.ob.publish(topic, i)));
      assert.deepEqual(offsets.map((r) => r.offset), range(2, 101));
      reader.ob.resume();
      await eventually(() => got.length >= 101, { what: '100 missed messages after resume' });
      assert.equal((await writer.ob.publish(topic, 'live')).offset, 102);
      await eventually(() => got.includes(102), { what: 'the live message after the catch-up' });
      assert.deepEqual(got, range(1, 102));
    });

    test('a TCP connection that goes silent is given up by the watchdog; the client reconnects and recovers what was missed, once, in order', async () => {
      const proxy = await startProxy(s.port);
      try {
        const u = await signup(s.url);
        const topic = fresh();
        const reader = clients.open(`ws://127.0.0.1:${proxy.port}/v1/ws`, u.token);
        const writer = clients.open(s.wsUrl, u.token);
        const got: number[] = [];
        await subscribed(reader.ob, topic, got);
        await connected(writer.ob, 'the writer');
        assert.equal((await writer.ob.publish(topic, 0)).offset, 1);
        await eventually(() => got.length === 1, { what: 'the first message' });
        proxy.blackhole();
        await Promise.all(range(1, 20).map((i) => writer.ob.publish(topic, i)));
        await eventually(() => reader.states.some(([st, info]) => st === 'disconnected' && info.reason === 'dead'), {
          what: 'the watchdog to give the silent connection up',
        });
        await eventually(() => got.length >= 21, { what: 'the messages sent into the dead connection, after the reconnect' });
        assert.deepEqual(got, range(1, 21));
      } finally {
        await proxy.close();
      }
    });

    test('a token about to expire is replaced on the live socket (auth op): no 4001, no reconnect', async () => {
      const u = await signup(s.url);
      const reasons: string[] = [];
      const short = await accessToken(u.id, 3);
      const c = clients.open(s.wsUrl, '', {
        getToken: ({ reason }) => {
          reasons.push(reason);
          return reason === 'connect' ? short : u.token;
        },
      });
      await connected(c.ob, 'the client');
      await eventually(() => reasons.includes('expiring'), { what: 'the refresh before exp' });
      // Absence takes waiting: past the short token's exp and a few heartbeat ticks.
      await sleep(3000 + 3 * PING_INTERVAL_MS);
      assert.deepEqual(reasons, ['connect', 'expiring']);
      assert.deepEqual(c.states.map(([st]) => st), ['connecting', 'connected']);
    });

    test('a token that expires on a live socket (refresh failed): 4001, one refresh, reconnect and resume', async () => {
      const u = await signup(s.url);
      const topic = fresh();
      const reasons: string[] = [];
      const short = await accessToken(u.id, 2);
      const c = clients.open(s.wsUrl, '', {
        getToken: ({ reason }) => {
          reasons.push(reason);
          if (reason === 'expiring') return Promise.reject(new Error('offline'));
          return reason === 'connect' && reasons.length === 1 ? short : u.token;
        },
      });
      const writer = clients.open(s.wsUrl, u.token);
      const got: number[] = [];
      await subscribed(c.ob, topic, got);
      await connected(writer.ob, 'the writer');
      assert.equal((await writer.ob.publish(topic, 1)).offset, 1);
      await eventually(() => c.states.some(([st, info]) => st === 'disconnected' && info.code === 4001), { what: 'the 4001 at exp' });
      assert.equal((await writer.ob.publish(topic, 2)).offset, 2);
      await eventually(() => got.length >= 2, { what: 'the message published around the expiry' });
      assert.deepEqual(got, [1, 2]);
      assert.deepEqual(reasons.filter((r) => r !== 'expiring'), ['connect', 'expired']);
      await connected(c.ob, 'the client again');
    });

    test('refusals as close codes (onebox.v1): an expired token gets one refresh then `unauthorized`; a forged one `unauthorized` at once; never a loop', async () => {
      const u = await signup(s.url);
      const expired = await accessToken(u.id, -60);
      let calls = 0;
      const a = clients.open(s.wsUrl, '', { getToken: () => (calls++, expired) });
      const aOut = new Promise((resolve) => a.ob.on('unauthorized', resolve));
      assert.deepEqual(await eventually(aOut, { what: 'unauthorized after the expired token' }), { code: 4001, reason: 'token_expired' });
      const forged = clients.open(s.wsUrl, `${u.token.slice(0, -4)}AAAA`);
      const fOut = new Promise((resolve) => forged.ob.on('unauthorized', resolve));
      assert.deepEqual(await eventually(fOut, { what: 'unauthorized after the forged token' }), { code: 4003, reason: 'invalid_token' });
      await sleep(1000);
      assert.equal(calls, 2, 'the first token and one refresh, nothing more');
      assert.deepEqual(a.states.map(([st]) => st), ['connecting', 'disconnected', 'connecting', 'closed']);
      assert.deepEqual(forged.states.map(([st]) => st), ['connecting', 'closed']);
    });

    test('receipts decide the push: a client whose handler runs gets no push; one connected but never running a handler for its channel is pushed', async () => {
      const handled = await signup(s.url);
      const idle = await signup(s.url);
      const tokenOf = (prefix: string) => (prefix + 'b'.repeat(64)).slice(0, 64);
      for (const [user, t] of [[handled, tokenOf('a1')], [idle, tokenOf('a2')]] as const) {
        assert.equal((await api(s.url, 'POST', '/v1/devices', { token: user.token, body: { platform: 'ios', token: t } })).status, 201);
      }
      const a = clients.open(s.wsUrl, handled.token);
      const got: number[] = [];
      a.ob.subscribe(`user:${handled.id}`, (m) => got.push(m.offset!));
      // The idle client is connected (so the push waits for the fallback) but nothing handles its channel.
      const b = clients.open(s.wsUrl, idle.token);
      await connected(a.ob, 'the handling client');
      await connected(b.ob, 'the idle client');
      const admin = { token: ADMIN_TOKEN };
      const ids: string[] = [];
      for (let i = 1; i <= 3; i++) {
        const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: handled.id, title: `n${i}` } });
        assert.deepEqual([r.status, r.body.live], [202, 1]);
        ids.push(r.body.id);
      }
      const idleNote = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: idle.id, title: 'unread' } });
      assert.deepEqual([idleNote.status, idleNote.body.live], [202, 1]);
      const sentAt = Date.now();
      await eventually(() => got.length === 3, { what: 'the three notifications to be handled' });
      const pushed = await push.waitFor((x) => x.token === tokenOf('a2') && x.status > 0);
      assert.equal(pushed.payload.onebox.id, idleNote.body.id);
      for (const id of ids) {
        await eventually(async () => (await api(s.url, 'GET', `/v1/notifications/${id}`, admin)).body.state === 'received', { what: `notification ${id} received` });
      }
      // Absence takes waiting: past the fallback and a few outbox polls.
      await sleep(Math.max(0, sentAt + FALLBACK_MS + 500 - Date.now()));
      assert.deepEqual(push.received.filter((x) => x.token === tokenOf('a1')), []);
      assert.deepEqual(got, [1, 2, 3]);
    });
  });

  describe(`onebox-client through a deploy (1012) on ${engine}`, () => {
    deployCase(engine);
  });

  describe(`onebox-client at the connection ceiling on ${engine}`, () => {
    let s: Running;
    const clients = new Clients();
    before(async () => {
      s = await startServer(engine, { ...serverEnv(), MAX_CONNECTIONS: '1' }, CHAT_NAMESPACE);
    });
    after(async () => {
      clients.closeAll();
      await s.stop();
    });

    test('the ceiling refusal (1013 over_capacity retry=<s>) is honoured: the next attempt waits the hinted seconds, not the backoff', async () => {
      const u = await signup(s.url);
      const first = clients.open(s.wsUrl, u.token);
      await connected(first.ob, 'the first client');
      const second = clients.open(s.wsUrl, u.token);
      const [, info] = await eventually(() => second.states.find(([st]) => st === 'disconnected'), { what: 'the refusal of the second client' });
      assert.deepEqual([info.code, info.reason], [1013, 'over_capacity']);
      // The server hints 1-10 s; the backoff's first window here is 100 ms.
      assert.ok(info.retryInMs! >= 1000 && info.retryInMs! < 20_000, `waits ${info.retryInMs} ms`);
      assert.equal(second.states.filter(([st]) => st === 'connecting').length, 1, 'no attempt before the hint');
    });
  });
}

/**
 * `onebox deploy` in small: the old and the new process share the data directory behind one
 * address (here a TCP proxy instead of nginx); the front switches to the new one, then the old
 * one gets SIGUSR2, the deploy's `--stop`, and drains with 1012.
 */
function deployCase(engine: EngineName) {
  const dataDir = mkdtempSync(join(tmpdir(), `onebox-sdk-deploy-${engine}-`));
  const servers: Running[] = [];
  let proxy: TcpProxy | undefined;
  const clients = new Clients();
  after(async () => {
    clients.closeAll();
    await proxy?.close();
    for (const x of servers) await x.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the old process closes with 1012, the client reconnects to the new one within restartSpreadMs and resumes in order', async () => {
    const env = { ...serverEnv(), DATA_DIR: dataDir };
    const blue = await startServer(engine, env, CHAT_NAMESPACE);
    servers.push(blue);
    proxy = await startProxy(blue.port);
    const front = `ws://127.0.0.1:${proxy.port}/v1/ws`;
    const u = await signup(blue.url);
    const topic = fresh();
    const reader = clients.open(front, u.token);
    const writer = clients.open(front, u.token);
    const got: number[] = [];
    await subscribed(reader.ob, topic, got);
    await connected(writer.ob, 'the writer');
    assert.deepEqual((await Promise.all(range(1, 10).map((i) => writer.ob.publish(topic, i)))).map((r) => r.offset), range(1, 10));

    const green = await startServer(engine, env, CHAT_NAMESPACE);
    servers.push(green);
    proxy.target = green.port;
    blue.proc.kill('SIGUSR2');
    const during = range(11, 20).map((i) => writer.ob.publish(topic, i));
    await eventually(blue.exited, { timeoutMs: 15_000, what: 'the old process to drain and exit' });
    assert.deepEqual((await Promise.all(during)).map((r) => r.offset), range(11, 20));
    // Published once the old process is gone: only the new one can take and deliver these.
    assert.deepEqual((await Promise.all(range(21, 25).map((i) => writer.ob.publish(topic, i)))).map((r) => r.offset), range(21, 25));
    await eventually(() => got.length >= 25, { what: 'the messages across the deploy' });
    assert.deepEqual(got, range(1, 25));
    for (const c of [reader, writer]) {
      const closeAt = c.states.findIndex(([st, info]) => st === 'disconnected' && info.code === 1012);
      assert.ok(closeAt >= 0, `closed with 1012: ${JSON.stringify(c.states)}`);
      assert.ok(c.states[closeAt]![1].retryInMs! < 300, 'the reconnect is spread within restartSpreadMs');
      assert.ok(c.states.slice(closeAt).some(([st]) => st === 'connected'), `connected again: ${JSON.stringify(c.states)}`);
    }
  });
}
