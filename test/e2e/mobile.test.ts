import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, ENGINES, signup, startServer, type Running } from '../kit/server.js';
import { startFakePush, type FakePush } from '../kit/fake-push.js';
import { connectWs } from '../kit/ws.js';
import { createTestDatabase } from '../kit/pg.js';
import { eventually } from '../kit/eventually.js';
import { metric } from '../kit/metrics.js';

const aborted = (url: string, load: string) => metric(url, `onebox_dashboard_loads_aborted_total{load="${load}"}`, 0);
const hex = (prefix: string) => (prefix + 'a'.repeat(64)).slice(0, 64);
const admin = { token: ADMIN_TOKEN };

for (const engine of ENGINES) {
 for (const store of ['sqlite', 'postgres'] as const) {
  describe(`mobile API on ${engine} with ${store}`, () => {
    let s: Running;
    let push: FakePush;
    let u: { token: string; id: string };
    let other: { token: string; id: string };
    let dropDb: () => Promise<void> = async () => undefined;
    before(async () => {
      push = await startFakePush();
      const dbEnv: Record<string, string> = {};
      if (store === 'postgres') {
        const t = await createTestDatabase();
        dbEnv.DATABASE_URL = t.url;
        dropDb = t.drop;
      }
      // TEST_MODE: the fake push services listen on loopback.
      s = await startServer(engine, { ...push.env, ...dbEnv, TEST_MODE: 'true', PUSH_POLL_MS: '100', PUSH_BACKOFF_BASE_MS: '50', PUSH_FALLBACK_MS: '400' });
      u = await signup(s.url);
      other = await signup(s.url);
    });
    after(async () => {
      await s.stop();
      await push.close();
      await dropDb();
    });

    test('events feed the dashboard counts over 7 and 30 days', async () => {
      const now = Date.now();
      const events = [
        { type: 'app.open', ts: now - 1000 },
        { type: 'app.open', ts: new Date(now - 10 * 86_400_000).toISOString() },
        { type: 'tap', ts: now, props: { button: 'buy' } },
      ];
      const r = await api(s.url, 'POST', '/v1/events', { token: u.token, body: { events } });
      assert.equal(r.status, 202);
      assert.equal(r.body.accepted, 3);
      const d = await api(s.url, 'GET', `/v1/users/${u.id}/dashboard`, { token: u.token });
      assert.equal(d.status, 200);
      assert.equal(d.body.profile.id, u.id);
      assert.deepEqual(d.body.metrics, { 'app.open': { last7d: 1, last30d: 2 }, tap: { last7d: 1, last30d: 1 } });
    });

    test('bad event batches are refused whole', async () => {
      const ok = { type: 'x', ts: Date.now() };
      const cases: Array<[unknown, string]> = [
        [{ events: Array.from({ length: 501 }, () => ok) }, 'events'],
        [{ events: [] }, 'events'],
        [{ events: [ok, { type: 'x', ts: 'yesterday' }] }, 'events.1.ts'],
        [{ events: [{ type: 'x', ts: Date.now() + 3_600_000 }] }, 'events.0.ts'],
        [{ events: [{ type: 'x', ts: Date.now() - 40 * 86_400_000 }] }, 'events.0.ts'],
        [{ events: [{ type: 'Bad Type', ts: Date.now() }] }, 'events.0.type'],
        [{ events: [{ ...ok, extra: 1 }] }, 'events.0.extra'],
        [{ events: [{ ...ok, props: 'nope' }] }, 'events.0.props'],
      ];
      const before = await api(s.url, 'GET', `/v1/users/${other.id}/dashboard`, { token: other.token });
      for (const [body, field] of cases) {
        const r = await api(s.url, 'POST', '/v1/events', { token: other.token, body });
        assert.equal(r.status, 400, field);
        assert.equal(r.body.error.code, 'validation_failed');
        assert.equal(r.body.error.field, field);
      }
      const after = await api(s.url, 'GET', `/v1/users/${other.id}/dashboard`, { token: other.token });
      assert.deepEqual(after.body.metrics, before.body.metrics);
      assert.equal((await api(s.url, 'POST', '/v1/events', { body: { events: [ok] } })).status, 401);
    });

    test("dashboard: own or admin; another user's is 403; unknown user 404", async () => {
      assert.equal((await api(s.url, 'GET', `/v1/users/${other.id}/dashboard`, { token: u.token })).body.error.code, 'forbidden');
      assert.equal((await api(s.url, 'GET', `/v1/users/${other.id}/dashboard`, { token: u.token })).status, 403);
      assert.equal((await api(s.url, 'GET', `/v1/users/${other.id}/dashboard`, admin)).status, 200);
      assert.equal((await api(s.url, 'GET', '/v1/users/nobody/dashboard', admin)).status, 404);
    });

    test('devices: upsert, list, delete own only, validation', async () => {
      const body = { platform: 'android', token: 'fcm-token-0123456789abcdef' };
      const a = await api(s.url, 'POST', '/v1/devices', { token: u.token, body });
      const b = await api(s.url, 'POST', '/v1/devices', { token: u.token, body });
      assert.equal(a.status, 201);
      assert.equal(a.body.device.id, b.body.device.id);
      const list = await api(s.url, 'GET', '/v1/devices', { token: u.token });
      assert.equal(list.body.devices.filter((d: any) => d.token === body.token).length, 1);
      assert.equal((await api(s.url, 'DELETE', `/v1/devices/${a.body.device.id}`, { token: other.token })).status, 404);
      assert.equal((await api(s.url, 'DELETE', `/v1/devices/${a.body.device.id}`, { token: u.token })).status, 204);
      assert.equal((await api(s.url, 'DELETE', `/v1/devices/${a.body.device.id}`, { token: u.token })).status, 404);
      const sub = push.webSubscription();
      const cases: Array<[unknown, string]> = [
        [{ platform: 'blackberry', token: 'x' }, 'platform'],
        [{ platform: 'ios', token: 'not-hex' }, 'token'],
        [{ platform: 'web', token: 'https://push.example.com/x' }, 'token'],
        [{ platform: 'web', token: { ...sub, keys: { ...sub.keys, p256dh: 'short' } } }, 'token.keys.p256dh'],
        [{ platform: 'web', token: { ...sub, endpoint: 'ftp://example.com/x' } }, 'token.endpoint'],
        [{ platform: 'web', token: { endpoint: sub.endpoint } }, 'token.keys'],
      ];
      for (const [bad, field] of cases) {
        const r = await api(s.url, 'POST', '/v1/devices', { token: u.token, body: bad });
        assert.equal(r.status, 400, JSON.stringify(bad));
        assert.equal(r.body.error.field, field, JSON.stringify(bad));
      }
    });

    test('TEST_MODE warns at boot; it allows loopback push endpoints but never private ones', async () => {
      const warn = await s.waitForLine((l) => l.level === 'warn' && l.testMode === true);
      assert.match(String(warn.msg), /TEST_MODE/);
      const sub = push.webSubscription();
      assert.equal((await api(s.url, 'POST', '/v1/devices', { token: u.token, body: { platform: 'web', token: sub } })).status, 201);
      for (const endpoint of ['https://10.0.0.1/push', 'https://169.254.169.254/latest', 'https://[fd00::1]/push']) {
        const r = await api(s.url, 'POST', '/v1/devices', { token: u.token, body: { platform: 'web', token: { ...sub, endpoint } } });
        assert.equal(r.status, 400, endpoint);
        assert.equal(r.body.error.code, 'push_endpoint_forbidden', endpoint);
      }
    });

    test('devices: past MAX_DEVICES_PER_USER (20) the least recently registered is replaced, also under concurrent registrations', async () => {
      const v = await signup(s.url);
      const register = (token: string) => api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'android', token } });
      const tok = (i: number) => `cap-fcm-registration-token-${String(i).padStart(4, '0')}`;
      for (let i = 0; i < 20; i++) assert.equal((await register(tok(i))).status, 201);
      assert.equal((await register(tok(0))).status, 201); // a refresh: token 0 is now the newest
      assert.equal((await register(tok(20))).status, 201);
      let tokens = (await api(s.url, 'GET', '/v1/devices', { token: v.token })).body.devices.map((d: any) => d.token);
      assert.equal(tokens.length, 20);
      assert.ok(!tokens.includes(tok(1)), 'the least recently registered device was replaced');
      assert.ok(tokens.includes(tok(0)) && tokens.includes(tok(20)));
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => register(tok(100 + i))));
      assert.deepEqual([...new Set(results.map((r) => r.status))], [201]);
      tokens = (await api(s.url, 'GET', '/v1/devices', { token: v.token })).body.devices.map((d: any) => d.token);
      assert.equal(tokens.length, 20);
      for (let i = 0; i < 12; i++) assert.ok(tokens.includes(tok(100 + i)), tok(100 + i));
    });

    test('notify: admin only, validated', async () => {
      assert.equal((await api(s.url, 'POST', '/v1/notify', { token: u.token, body: { userId: u.id, title: 't' } })).status, 403);
      assert.equal((await api(s.url, 'POST', '/v1/notify', { body: { userId: u.id, title: 't' } })).status, 403);
      const both = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: u.id, topic: 'news', title: 't' } });
      assert.equal(both.status, 400);
      assert.equal((await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: 'ghost', title: 't' } })).status, 404);
    });

    test('notify: live to an open connection that acknowledges it; its push fallback is cancelled', async () => {
      const v = await signup(s.url);
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'ios', token: hex('1') } });
      const ws = await connectWs(s.wsUrl, v.token);
      const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'live', data: { n: 1 } } });
      assert.equal(r.status, 202);
      assert.deepEqual([r.body.live, r.body.queued, r.body.offset], [1, 1, 1]);
      const m = await ws.next((f) => f.op === 'msg');
      assert.deepEqual([m.data.id, m.data.title, m.topic, m.offset], [r.body.id, 'live', `user:${v.id}`, 1]);
      ws.send({ op: 'recv', topic: m.topic, offset: m.offset });
      const status = await eventually(async () => {
        const st = await api(s.url, 'GET', `/v1/notifications/${r.body.id}`, admin);
        return st.body.state === 'received' && st.body;
      }, { what: 'the notification to be received' });
      assert.ok(status.receivedAt >= Date.now() - 60_000);
      // Well past PUSH_FALLBACK_MS (400 ms) and the poll: the cancelled push never went out.
      await new Promise((res) => setTimeout(res, 1000));
      assert.equal(push.received.filter((x) => x.token === hex('1')).length, 0);
      ws.close();
    });

    test('notify: outbox to APNs, FCM and Web Push when offline, wire format checked', async () => {
      const v = await signup(s.url);
      const sub = push.webSubscription();
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'ios', token: hex('2') } });
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'android', token: 'fcm-live-token-0123456789' } });
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'web', token: sub } });
      const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'Offline', body: 'hello', data: { k: 'v' } } });
      assert.equal(r.status, 202);
      assert.deepEqual([r.body.live, r.body.queued], [0, 3]);
      const apns = await push.waitFor((x) => x.service === 'apns' && x.token === hex('2'));
      assert.deepEqual(apns.payload.aps.alert, { title: 'Offline', body: 'hello' });
      const fcm = await push.waitFor((x) => x.service === 'fcm' && x.token === 'fcm-live-token-0123456789');
      assert.deepEqual(fcm.payload.notification, { title: 'Offline', body: 'hello' });
      assert.equal(fcm.payload.data.k, 'v');
      const web = await push.waitFor((x) => x.service === 'web' && sub.endpoint.endsWith(x.token));
      assert.equal(web.payload.title, 'Offline');
    });

    test('notify push:true also queues while connected; 429 is retried', async () => {
      const v = await signup(s.url);
      await api(s.url, 'POST', '/v1/devices', { token: v.token, body: { platform: 'ios', token: hex('3') } });
      const ws = await connectWs(s.wsUrl, v.token);
      push.throttleApns(1);
      const r = await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'both', push: true } });
      assert.deepEqual([r.body.live, r.body.queued], [1, 1]);
      await push.waitFor((x) => x.token === hex('3') && x.status === 429);
      await push.waitFor((x) => x.token === hex('3') && x.status === 200);
      ws.close();
    });

    test('dead tokens remove the device (APNs 410, FCM UNREGISTERED, Web Push 410)', async () => {
      const v = await signup(s.url);
      const sub = push.webSubscription(true);
      for (const body of [
        { platform: 'ios', token: hex('dead') },
        { platform: 'android', token: 'dead-fcm-token-0123456789' },
        { platform: 'web', token: sub },
      ]) {
        assert.equal((await api(s.url, 'POST', '/v1/devices', { token: v.token, body })).status, 201);
      }
      await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: v.id, title: 'bye' } });
      await push.waitFor((x) => x.token === hex('dead') && x.status === 410);
      await push.waitFor((x) => x.token === 'dead-fcm-token-0123456789' && x.status === 404);
      await push.waitFor((x) => x.service === 'web' && sub.endpoint.endsWith(x.token) && x.status === 410);
      await eventually(async () => (await api(s.url, 'GET', '/v1/devices', { token: v.token })).body.devices.length === 0, {
        what: 'the three dead devices to be removed',
      });
      assert.deepEqual((await api(s.url, 'GET', '/v1/devices', { token: v.token })).body.devices, []);
    });

    test('openapi.json documents every /v1 route', async () => {
      const r = await api(s.url, 'GET', '/openapi.json');
      assert.equal(r.status, 200);
      assert.equal(r.body.openapi, '3.1.0');
      const paths = r.body.paths as Record<string, Record<string, unknown>>;
      const expected = [
        ['post', '/v1/auth/signup'], ['post', '/v1/auth/login'], ['get', '/v1/me'], ['patch', '/v1/me'],
        ['get', '/v1/users/{id}/dashboard'], ['post', '/v1/events'], ['post', '/v1/devices'], ['get', '/v1/devices'],
        ['delete', '/v1/devices/{id}'], ['post', '/v1/notify'], ['get', '/v1/ws'],
        ['post', '/v1/auth/refresh'], ['post', '/v1/auth/logout'], ['post', '/v1/auth/logout-all'], ['get', '/v1/me/sessions'], ['delete', '/v1/me/sessions/{id}'],
      ];
      for (const [m, p] of expected) assert.ok(paths[p!]?.[m!], `${m} ${p}`);
      assert.ok((paths['/v1/devices'] as any).post.requestBody.content['application/json'].schema);
    });
  });
 }

  describe(`dashboard cancellation on ${engine}`, () => {
    let s: Running;
    let u: { token: string; id: string };
    before(async () => {
      s = await startServer(engine, { TEST_MODE: 'true', FAULT_STORE_DELAY_MS: '1500', DASHBOARD_TIMEOUT_MS: '5000' });
      u = await signup(s.url);
    });
    after(() => s.stop());

    test('a client that goes away aborts both loads', async () => {
      const before = { profile: await aborted(s.url, 'profile'), metrics: await aborted(s.url, 'metrics') };
      const started = Date.now();
      const req = request(`${s.url}/v1/users/${u.id}/dashboard`, { headers: { authorization: `Bearer ${u.token}` } });
      req.on('error', () => undefined);
      req.end();
      await eventually(async () => (await metric(s.url, 'onebox_http_requests_in_flight')) >= 2, {
        what: 'the dashboard request to be in flight beside the scrape',
      });
      req.destroy();
      await eventually(
        async () => (await aborted(s.url, 'profile')) > before.profile && (await aborted(s.url, 'metrics')) > before.metrics,
        { what: 'both dashboard loads to count as aborted' },
      );
      assert.equal(await aborted(s.url, 'profile'), before.profile + 1);
      assert.equal(await aborted(s.url, 'metrics'), before.metrics + 1);
      // Aborted, not finished: the loads take FAULT_STORE_DELAY_MS (1500 ms) when left alone.
      assert.ok(Date.now() - started < 1500, `counted after ${Date.now() - started} ms`);
    });
  });

  describe(`dashboard deadline on ${engine}`, () => {
    let s: Running;
    before(async () => {
      s = await startServer(engine, { TEST_MODE: 'true', FAULT_STORE_DELAY_MS: '2000', DASHBOARD_TIMEOUT_MS: '200' });
    });
    after(() => s.stop());

    test('past DASHBOARD_TIMEOUT_MS: 504 and both loads aborted', async () => {
      const u = await signup(s.url);
      const started = Date.now();
      const r = await api(s.url, 'GET', `/v1/users/${u.id}/dashboard`, { token: u.token });
      assert.equal(r.status, 504);
      assert.equal(r.body.error.code, 'deadline_exceeded');
      assert.ok(Date.now() - started < 1500, 'answered before the loads would have finished');
      assert.equal(await aborted(s.url, 'profile'), 1);
      assert.equal(await aborted(s.url, 'metrics'), 1);
    });
  });

  describe(`push outbox durability on ${engine}`, () => {
    test('accepted with 202, then kill -9: delivered after the next start', async (t) => {
      const push = await startFakePush();
      // Hooks run in order: servers first, then the fake push services they talk to.
      const servers: Running[] = [];
      t.after(async () => {
        for (const srv of servers.reverse()) await srv.stop();
        await push.close();
      });
      // First life: APNs unreachable, so nothing can be delivered before the kill.
      const lease = { TEST_MODE: 'true', PUSH_LEASE_MS: '1000', PUSH_SEND_TIMEOUT_MS: '500' };
      const first = await startServer(engine, { ...push.env, ...lease, APNS_ORIGIN: 'http://127.0.0.1:9', PUSH_BACKOFF_BASE_MS: '50' });
      servers.push(first);
      const u = await signup(first.url);
      await api(first.url, 'POST', '/v1/devices', { token: u.token, body: { platform: 'ios', token: hex('4') } });
      const r = await api(first.url, 'POST', '/v1/notify', { ...admin, body: { userId: u.id, title: 'durable' } });
      assert.equal(r.status, 202);
      first.proc.kill('SIGKILL');
      await eventually(first.exited, { what: 'the first server to die of SIGKILL' });
      const second = await startServer(engine, { ...push.env, ...lease, DATA_DIR: first.dataDir, PUSH_POLL_MS: '100' });
      servers.push(second);
      const got = await push.waitFor((x) => x.token === hex('4') && x.status === 200);
      assert.equal(got.payload.aps.alert.title, 'durable');
    });
  });
  describe(`push send deadline on ${engine}`, () => {
    let s: Running;
    let push: FakePush;
    before(async () => {
      push = await startFakePush();
      s = await startServer(engine, {
        ...push.env,
        TEST_MODE: 'true',
        PUSH_SEND_TIMEOUT_MS: '3000',
        PUSH_LEASE_MS: '6000',
        PUSH_POLL_MS: '100',
        PUSH_BACKOFF_BASE_MS: '50',
      });
    });
    after(async () => {
      await s.stop();
      await push.close();
    });

    test("silent APNs, FCM and Web Push endpoints of one user hold up no other user's pushes; at PUSH_SEND_TIMEOUT_MS they are retried", async () => {
      const quiet = await signup(s.url);
      const quietWeb = push.webSubscription();
      const silent = [hex('5'), 'silent-fcm-token-0123456789', quietWeb.endpoint.split('/').pop()!];
      for (const token of silent) push.silence(token);
      for (const body of [
        { platform: 'ios', token: silent[0] },
        { platform: 'android', token: silent[1] },
        { platform: 'web', token: quietWeb },
      ]) {
        assert.equal((await api(s.url, 'POST', '/v1/devices', { token: quiet.token, body })).status, 201);
      }
      const retriedBefore = await metric(s.url, 'onebox_push_total{outcome="retried"}', 0);
      assert.equal((await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: quiet.id, title: 'quiet' } })).status, 202);
      for (const token of silent) await push.waitFor((x) => x.token === token && x.status === 0);

      // Every silent send is in flight now; another user's pushes must not wait for them.
      const other = await signup(s.url);
      const otherWeb = push.webSubscription();
      const prompt = [hex('6'), 'prompt-fcm-token-0123456789', otherWeb.endpoint.split('/').pop()!];
      for (const body of [
        { platform: 'ios', token: prompt[0] },
        { platform: 'android', token: prompt[1] },
        { platform: 'web', token: otherWeb },
      ]) {
        assert.equal((await api(s.url, 'POST', '/v1/devices', { token: other.token, body })).status, 201);
      }
      assert.equal((await api(s.url, 'POST', '/v1/notify', { ...admin, body: { userId: other.id, title: 'prompt' } })).status, 202);
      for (const token of prompt) await push.waitFor((x) => x.token === token && x.status >= 200 && x.status < 300);
      assert.deepEqual(
        push.received.filter((x) => x.status === 499),
        [],
        'the other user was served while every silent send was still pending',
      );

      // At the deadline each silent send is abandoned (its request closed) and tried again.
      for (const token of silent) {
        await push.waitFor((x) => x.token === token && x.status === 499);
        await eventually(() => push.received.filter((x) => x.token === token && x.status === 0).length >= 2, {
          what: `a second attempt to ${token}`,
        });
      }
      const retried = await metric(s.url, 'onebox_push_total{outcome="retried"}', 0);
      assert.ok(retried - retriedBefore >= 3, `retried ${retried - retriedBefore}`);
    });
  });

  describe(`push endpoint policy without TEST_MODE on ${engine}`, () => {
    let s: Running;
    let u: { token: string; id: string };
    before(async () => {
      s = await startServer(engine);
      u = await signup(s.url);
    });
    after(() => s.stop());

    // Strings only: registration never connects or resolves, and no push is sent here.
    const keys = { p256dh: Buffer.concat([Buffer.from([4]), randomBytes(64)]).toString('base64url'), auth: randomBytes(16).toString('base64url') };
    const register = (endpoint: string) => api(s.url, 'POST', '/v1/devices', { token: u.token, body: { platform: 'web', token: { endpoint, keys } } });

    test('web endpoints on private, loopback, link-local, CGNAT and reserved addresses are refused with push_endpoint_forbidden', async () => {
      const refused = [
        'https://169.254.169.254/latest/meta-data/',
        'https://10.0.0.1/push',
        'https://172.16.5.4/push',
        'https://192.168.1.1/push',
        'https://100.64.0.1/push',
        'https://0.0.0.0/push',
        'https://224.0.0.1/push',
        'https://localhost:8443/push',
        'https://127.0.0.1/push',
        'http://127.0.0.1:8443/push',
        'https://2130706433/push',
        'https://[::1]/push',
        'https://[::ffff:10.0.0.1]/push',
        'https://[::ffff:169.254.169.254]/push',
        'https://[fd00::1]/push',
        'https://[fe80::1]/push',
        'https://[ff02::1]/push',
        'https://printer.local/push',
        'https://metadata.google.internal/computeMetadata',
      ];
      for (const endpoint of refused) {
        const r = await register(endpoint);
        assert.equal(r.status, 400, endpoint);
        assert.equal(r.body.error.code, 'push_endpoint_forbidden', endpoint);
        assert.equal(r.body.error.field, 'token.endpoint', endpoint);
      }
      assert.deepEqual((await api(s.url, 'GET', '/v1/devices', { token: u.token })).body.devices, []);
      // A public push service's name is accepted (it is resolved and checked at each send).
      assert.equal((await register('https://fcm.googleapis.com/fcm/send/abc123')).status, 201);
    });
  });
}
