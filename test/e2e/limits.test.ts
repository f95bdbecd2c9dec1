/**
 * Issue 11 item 8: the login rate limit and the per-address WebSocket limit hold per box
 * (WORKERS=2: every worker asks the supervisor), and the WebSocket side counts the same
 * client address as the HTTP side behind a trusted proxy (TRUST_PROXY=1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { api, ENGINES, startServer, type Running } from '../kit/server.js';
import { connectWs, Client, refusedUpgrade } from '../kit/ws.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { eventually } from '../kit/eventually.js';
import { clusterConnections } from '../kit/metrics.js';

/** Sign up from an address the test does not rate-limit otherwise. */
async function signupFrom(url: string, from: { localAddress?: string; forwardedFor?: string }): Promise<string> {
  const email = `limits-${process.pid}-${Date.now()}-${Math.random()}@example.com`;
  const r = await api(url, 'POST', '/v1/auth/signup', {
    body: { email, password: 'correct horse battery' },
    localAddress: from.localAddress,
    headers: from.forwardedFor ? { 'x-forwarded-for': from.forwardedFor } : {},
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.token as string;
}

/** One upgrade attempt: the open client, or the refusal's status and code. */
function attempt(url: string, headers: Record<string, string> = {}): Promise<Client | { status: number; code: string }> {
  return new Promise((resolve, reject) => {
    // Short: on Node a connection the cluster primary hands to a worker as it dies never
    // answers, and the caller's eventually() retries.
    const ws = new WebSocket(url, { headers, handshakeTimeout: 2000 });
    const client = new Client(ws);
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, code: (JSON.parse(text || '{}') as any).error?.code }));
    });
  });
}

const login = (url: string, email: string, headers: Record<string, string> = {}) =>
  api(url, 'POST', '/v1/auth/login', { body: { email, password: 'wrong password' }, headers });

for (const engine of ENGINES) {
  describe(`limits per box with WORKERS=2 on ${engine}`, () => {
    let redis: RedisServer;
    let s: Running;
    const clients: Client[] = [];
    before(async () => {
      redis = await startRedis();
      // debug: one log line per request, with the worker that served it.
      s = await startServer(engine, { WORKERS: '2', REDIS_URL: redis.url, MAX_CONNECTIONS_PER_IP: '3', LOG_LEVEL: 'debug' });
    });
    after(async () => {
      for (const c of clients) c.close();
      await s.stop();
      await redis.stop();
    });

    test('25 login attempts for one email from one address: the 21st and later get 429 whichever worker serves them', async () => {
      const email = `nobody-${process.pid}-${Date.now()}@example.com`;
      const statuses: number[] = [];
      for (let i = 0; i < 25; i++) {
        // api() opens a fresh connection per request, so both workers take some.
        const r = await login(s.url, email);
        statuses.push(r.status);
        if (i < 20) assert.equal(r.body.error.code, 'invalid_credentials', `attempt ${i + 1}`);
        else {
          assert.equal(r.body.error.code, 'rate_limited', `attempt ${i + 1}`);
          assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
        }
      }
      assert.deepEqual(statuses, [...Array<number>(20).fill(401), ...Array<number>(5).fill(429)]);
      const servedBy = new Set(s.lines.filter((l) => l.msg === 'request' && l.route === '/v1/auth/login').map((l) => l.worker));
      assert.deepEqual([...servedBy].sort(), [0, 1], 'both workers served login attempts');
    });

    test('MAX_CONNECTIONS_PER_IP=3: a 4th WebSocket from one address is refused by either worker, and a closed one frees its slot', async () => {
      const token = await signupFrom(s.url, { localAddress: '127.0.0.3' });
      const url = `${s.wsUrl}?token=${encodeURIComponent(token)}`;
      for (let i = 0; i < 3; i++) clients.push(await connectWs(s.wsUrl, token));
      // Fresh connections: the kernel (Bun) or the primary (Node) hands them to both workers.
      for (let i = 0; i < 6; i++) {
        const r = await refusedUpgrade(url);
        assert.equal(r.status, 503, `attempt ${i + 4}`);
        assert.equal(r.body.error.code, 'over_capacity');
        assert.match(String(r.headers['retry-after']), /^\d+$/);
      }
      const gone = clients.pop()!;
      gone.close();
      await gone.waitClosed();
      // The release reaches the supervisor over IPC: the slot comes back shortly after.
      const back = await eventually(async () => {
        const r = await attempt(url);
        return r instanceof Client ? r : null;
      }, { what: 'a slot to come back after a close' });
      clients.push(back);
      assert.equal((await refusedUpgrade(url)).body.error.code, 'over_capacity');
    });

    test('a worker that dies gives its slots back', async () => {
      const token = await signupFrom(s.url, { localAddress: '127.0.0.4' });
      const url = `${s.wsUrl}?token=${encodeURIComponent(token)}`;
      const table = await eventually(async () => {
        const t = await clusterConnections(s.url);
        const total = [...t.values()].reduce((a, w) => a + w.n, 0);
        return total === clients.length ? t : null;
      }, { what: 'the cluster table to count every open WebSocket' });
      const [victim] = [...table.values()].filter((w) => w.n > 0).sort((a, b) => b.n - a.n);
      assert.ok(victim, 'some worker holds connections');
      process.kill(victim.pid, 'SIGKILL');
      await eventually(async () => {
        return clients.filter((c) => c.ws.readyState === WebSocket.CLOSED).length === victim.n;
      }, { what: "the killed worker's connections to close" });
      let open = clients.length - victim.n;
      while (open < 3) {
        clients.push(
          await eventually(async () => {
            const r = await attempt(url);
            return r instanceof Client ? r : null;
          }, { timeoutMs: 30_000, what: `slot ${open + 1} of 3 after the worker died` }),
        );
        open++;
      }
      assert.equal((await refusedUpgrade(url)).body.error.code, 'over_capacity');
    });
  });

  describe(`TRUST_PROXY=1 on ${engine}`, () => {
    let s: Running;
    let token: string;
    let url: string;
    const clients: Client[] = [];
    const from = (xff: string) => ({ 'x-forwarded-for': xff });
    before(async () => {
      s = await startServer(engine, { TRUST_PROXY: '1', MAX_CONNECTIONS_PER_IP: '2', AUTH_RATE_PER_MIN: '3' });
      token = await signupFrom(s.url, { forwardedFor: '192.0.2.200' });
      url = `${s.wsUrl}?token=${encodeURIComponent(token)}`;
    });
    after(async () => {
      for (const c of clients) c.close();
      await s.stop();
    });

    test('the per-address WebSocket limit counts the forwarded client, not the proxy', async () => {
      for (let i = 0; i < 2; i++) clients.push(await connectWs(s.wsUrl, token, { headers: from('203.0.113.1') }));
      assert.equal((await refusedUpgrade(url, from('203.0.113.1'))).body.error.code, 'over_capacity');
      // Another client behind the same proxy (the same peer address) has its own two.
      for (let i = 0; i < 2; i++) clients.push(await connectWs(s.wsUrl, token, { headers: from('203.0.113.2') }));
      assert.equal((await refusedUpgrade(url, from('203.0.113.2'))).status, 503);
    });

    test('a forged left-most X-Forwarded-For entry does not let a client escape the limit', async () => {
      for (const forged of ['198.51.100.9', '198.51.100.10, 10.0.0.1', '203.0.113.99']) {
        const r = await refusedUpgrade(url, from(`${forged}, 203.0.113.1`));
        assert.equal(r.status, 503, forged);
        assert.equal(r.body.error.code, 'over_capacity', forged);
      }
      // The forged address itself still has free slots: the refusals above counted 203.0.113.1.
      clients.push(await connectWs(s.wsUrl, token, { headers: from('198.51.100.9') }));
    });

    test('the login limit counts the same forwarded client', async () => {
      const email = () => `nobody-${Math.random()}@example.com`;
      for (let i = 0; i < 3; i++) assert.equal((await login(s.url, email(), from('203.0.113.7'))).status, 401);
      assert.equal((await login(s.url, email(), from('203.0.113.7'))).body.error.code, 'rate_limited');
      assert.equal((await login(s.url, email(), from('198.51.100.9, 203.0.113.7'))).body.error.code, 'rate_limited');
      assert.equal((await login(s.url, email(), from('203.0.113.8'))).status, 401);
    });
  });
}
