import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { signJwt } from '../../src/cli/bench/jwt.js';
import { ADMIN_TOKEN, api, ENGINES, JWT_SECRET, runCli, signup, startServer, type Running } from '../kit/server.js';
import { eventually } from '../kit/eventually.js';
import { metric } from '../kit/metrics.js';

/** Raw GET so the test sees Content-Encoding as sent (fetch would decode it). */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('configuration errors', () => {
  test('PORT=abc exits non-zero naming the variable', async () => {
    const r = await runCli(['serve'], { PORT: 'abc' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /PORT/);
  });
  test('ENGINE=deno exits non-zero naming the variable and choices', async () => {
    const r = await runCli(['serve'], { ENGINE: 'deno' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ENGINE/);
    assert.match(r.stderr, /bun/);
  });
  test('WORKERS>1 without REDIS_URL fails fast', async () => {
    const r = await runCli(['serve'], { WORKERS: '3' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /REDIS_URL/);
  });
  test('--help on each command', async () => {
    for (const cmd of ['serve', 'migrate']) {
      const r = await runCli([cmd, '--help'], {});
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`onebox ${cmd}`));
    }
  });
});

for (const engine of ENGINES) {
  describe(`HTTP API on ${engine}`, () => {
    let s: Running;
    let user: { token: string; id: string; email: string };
    before(async () => {
      s = await startServer(engine, { LOG_LEVEL: 'debug', BODY_LIMIT_BYTES: '4096', AUTH_RATE_PER_MIN: '1000' });
      user = await signup(s.url);
    });
    after(() => s.stop());

    test('healthz and readyz', async () => {
      assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);
      const r = await api(s.url, 'GET', '/readyz');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    });

    test('metrics in Prometheus text on loopback', async () => {
      const r = await api(s.url, 'GET', '/metrics');
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
      for (const name of [
        'onebox_process_resident_memory_bytes',
        'onebox_event_loop_delay_seconds',
        'onebox_http_requests_total',
        'onebox_http_request_duration_seconds_bucket',
        'onebox_ws_connections',
      ]) {
        assert.match(r.body as string, new RegExp(`^${name}`, 'm'), name);
      }
      assert.match(r.body as string, /onebox_http_requests_total\{route="\/v1\/auth\/signup",method="POST",status="201"\} [1-9]/);
    });

    test('signup, login, me, patch me', async () => {
      const login = await api(s.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: 'correct horse battery' } });
      assert.equal(login.status, 200);
      assert.deepEqual(Object.keys(login.body).sort(), ['expiresIn', 'refreshToken', 'token', 'user']);
      assert.equal(login.body.expiresIn, 900);
      assert.equal(login.body.user.id, user.id);
      const me = await api(s.url, 'GET', '/v1/me', { token: login.body.token });
      assert.equal(me.status, 200);
      assert.equal(me.body.user.email, user.email);
      assert.equal(me.body.user.password_hash, undefined);
      const patched = await api(s.url, 'PATCH', '/v1/me', {
        token: user.token,
        body: { displayName: 'Ada', avatarUrl: 'https://cdn.example.com/a.png', locale: 'pt-BR' },
      });
      assert.equal(patched.status, 200);
      assert.deepEqual(
        [patched.body.user.displayName, patched.body.user.avatarUrl, patched.body.user.locale],
        ['Ada', 'https://cdn.example.com/a.png', 'pt-BR'],
      );
      const again = await api(s.url, 'GET', '/v1/me', { token: user.token });
      assert.equal(again.body.user.displayName, 'Ada');
    });

    test('400 bad JSON, wrong types, unknown fields, with the failing field', async () => {
      const bad = await api(s.url, 'POST', '/v1/auth/signup', { raw: '{"email":', headers: { 'content-type': 'application/json' } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'bad_json');
      const types = await api(s.url, 'POST', '/v1/auth/signup', { body: { email: 'x@example.com', password: 12345678 } });
      assert.equal(types.status, 400);
      assert.equal(types.body.error.code, 'validation_failed');
      assert.equal(types.body.error.field, 'password');
      const unknown = await api(s.url, 'POST', '/v1/auth/signup', { body: { email: 'y@example.com', password: 'longenough', admin: true } });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.field, 'admin');
      const patch = await api(s.url, 'PATCH', '/v1/me', { token: user.token, body: { locale: 'not a locale!' } });
      assert.equal(patch.status, 400);
      assert.equal(patch.body.error.field, 'locale');
      const url = await api(s.url, 'PATCH', '/v1/me', { token: user.token, body: { avatarUrl: 'javascript:alert(1)' } });
      assert.equal(url.body.error.field, 'avatarUrl');
    });

    test('409 duplicate signup, case-insensitive email', async () => {
      const r = await api(s.url, 'POST', '/v1/auth/signup', { body: { email: user.email.toUpperCase(), password: 'another password' } });
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, 'email_taken');
    });

    test('401: the same code for unknown email and wrong password', async () => {
      const wrong = await api(s.url, 'POST', '/v1/auth/login', { body: { email: user.email, password: 'wrong password' } });
      const unknown = await api(s.url, 'POST', '/v1/auth/login', { body: { email: 'nobody@example.com', password: 'wrong password' } });
      assert.equal(wrong.status, 401);
      assert.equal(unknown.status, 401);
      assert.equal(wrong.body.error.code, 'invalid_credentials');
      assert.deepEqual(wrong.body, unknown.body);
    });

    test('401: missing, forged, expired, alg:none and audience-less tokens', async () => {
      const now = Math.floor(Date.now() / 1000);
      const claims = { sub: user.id, iss: 'onebox', aud: 'onebox:access', iat: now, exp: now + 3600 };
      const cases: Array<[string | undefined, string]> = [
        [undefined, 'unauthorized'],
        ['not-a-jwt', 'invalid_token'],
        [signJwt({ alg: 'HS256', typ: 'JWT' }, claims, 'some-other-secret-some-other-secret'), 'invalid_token'],
        [signJwt({ alg: 'none', typ: 'JWT' }, claims, null), 'invalid_token'],
        [signJwt({ alg: 'HS256', typ: 'JWT' }, { ...claims, iat: now - 7200, exp: now - 3600 }, JWT_SECRET), 'token_expired'],
        [signJwt({ alg: 'HS256', typ: 'JWT' }, { ...claims, aud: undefined }, JWT_SECRET), 'invalid_token'],
        [signJwt({ alg: 'HS256', typ: 'JWT' }, { ...claims, aud: 'onebox:sub', topic: 'room:1' }, JWT_SECRET), 'invalid_token'],
      ];
      for (const [token, code] of cases) {
        const r = await api(s.url, 'GET', '/v1/me', token ? { token } : {});
        assert.equal(r.status, 401, String(token));
        assert.equal(r.body.error.code, code, String(token));
      }
      const valid = signJwt({ alg: 'HS256', typ: 'JWT' }, claims, JWT_SECRET);
      assert.equal((await api(s.url, 'GET', '/v1/me', { token: valid })).status, 200);
    });

    test('metrics: with no trusted proxy a forged X-Forwarded-For is ignored, the loopback peer gets 200', async () => {
      const r = await api(s.url, 'GET', '/metrics', { headers: { 'x-forwarded-for': '203.0.113.9' } });
      assert.equal(r.status, 200);
    });

    test('404 unknown route, 405 wrong method with Allow, 426 on /v1/ws without upgrade', async () => {
      const nf = await api(s.url, 'GET', '/v1/nope');
      assert.equal(nf.status, 404);
      assert.equal(nf.body.error.code, 'not_found');
      const na = await api(s.url, 'PUT', '/v1/me', { token: user.token, body: {} });
      assert.equal(na.status, 405);
      assert.equal(na.body.error.code, 'method_not_allowed');
      assert.match(na.headers.get('allow') ?? '', /GET/);
      assert.match(na.headers.get('allow') ?? '', /PATCH/);
      const ws = await api(s.url, 'GET', '/v1/ws');
      assert.equal(ws.status, 426);
    });

    test('413 over the body limit, 415 wrong content type', async () => {
      const big = await api(s.url, 'POST', '/v1/auth/signup', { body: { email: 'big@example.com', password: 'x'.repeat(10_000) } });
      assert.equal(big.status, 413);
      assert.equal(big.body.error.code, 'payload_too_large');
      const text = await api(s.url, 'POST', '/v1/auth/login', { raw: 'email=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(text.status, 415);
      assert.equal(text.body.error.code, 'unsupported_media_type');
    });

    test('huge headers get an error, and the server lives on', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const sock = connect(s.port, '127.0.0.1', () => {
          sock.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`);
        });
        let data = '';
        sock.on('data', (d) => (data += d.toString()));
        sock.on('error', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0)));
        sock.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0)));
        sock.setTimeout(5000, () => reject(new Error('no answer')));
      });
      assert.equal(status, 431);
      assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);
    });

    test('brotli and gzip above the threshold, identity below', async () => {
      const br = await rawGet(`${s.url}/metrics`, { 'accept-encoding': 'gzip, br' });
      assert.equal(br.headers['content-encoding'], 'br');
      const gz = await rawGet(`${s.url}/metrics`, { 'accept-encoding': 'gzip' });
      assert.equal(gz.headers['content-encoding'], 'gzip');
      const { gunzipSync } = await import('node:zlib');
      assert.match(gunzipSync(gz.body).toString(), /onebox_http_requests_total/);
      const small = await rawGet(`${s.url}/healthz`, { 'accept-encoding': 'gzip, br' });
      assert.equal(small.headers['content-encoding'], undefined);
    });

    test('structured logs carry request id, route, status, duration and no secrets', async () => {
      const secretPassword = 'never-log-this-password';
      const r = await api(s.url, 'POST', '/v1/auth/login', {
        body: { email: user.email, password: secretPassword },
        headers: { 'x-request-id': 'req-abc-123' },
      });
      assert.equal(r.status, 401);
      await api(s.url, 'GET', `/v1/ws?token=${user.token}`);
      await api(s.url, 'GET', '/v1/me', { token: user.token, headers: { 'x-request-id': 'req-me-1' } });
      const line = await s.waitForLine((l) => l.reqId === 'req-me-1');
      assert.equal(line.route, '/v1/me');
      assert.equal(line.status, 200);
      assert.equal(typeof line.ms, 'number');
      assert.equal(typeof line.time, 'string');
      assert.equal(line.level, 'debug');
      await s.waitForLine((l) => l.reqId === 'req-abc-123');
      const all = s.lines.map((l) => l.__raw).join('\n');
      assert.ok(!all.includes(secretPassword), 'password logged');
      assert.ok(!all.includes(user.token), 'token logged');
      assert.match(all, /token=\[redacted\]/);
    });
  });

  describe(`metrics behind a trusted proxy on ${engine}`, () => {
    let s: Running;
    before(async () => {
      s = await startServer(engine, { TRUST_PROXY: '1' });
    });
    after(() => s.stop());

    test('403 forbidden for a client elsewhere than loopback without the admin token; 200 with it', async () => {
      const remote = { 'x-forwarded-for': '203.0.113.9' };
      const refused = await api(s.url, 'GET', '/metrics', { headers: remote });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'forbidden');
      const wrong = await api(s.url, 'GET', '/metrics', { headers: remote, token: `${ADMIN_TOKEN}x` });
      assert.equal(wrong.status, 403);
      const admitted = await api(s.url, 'GET', '/metrics', { headers: remote, token: ADMIN_TOKEN });
      assert.equal(admitted.status, 200);
      assert.match(admitted.body as string, /^onebox_ws_connections /m);
      // A loopback client behind the proxy still needs no token.
      assert.equal((await api(s.url, 'GET', '/metrics', { headers: { 'x-forwarded-for': '127.0.0.1' } })).status, 200);
    });
  });

  describe(`auth rate limit on ${engine}`, () => {
    let s: Running;
    before(async () => {
      s = await startServer(engine, { AUTH_RATE_PER_MIN: '3' });
    });
    after(() => s.stop());
    test('429 with Retry-After per email and per address', async () => {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 5; i++) {
        const r = await api(s.url, 'POST', '/v1/auth/login', { body: { email: 'victim@example.com', password: 'guess guess' } });
        statuses.push(r.status);
        if (r.status === 429) {
          retryAfter = r.headers.get('retry-after');
          assert.equal(r.body.error.code, 'rate_limited');
        }
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
      assert.ok(Number(retryAfter) >= 1);
      // Same address, other email: the per-address window is spent too.
      const other = await api(s.url, 'POST', '/v1/auth/login', { body: { email: 'other@example.com', password: 'guess guess' } });
      assert.equal(other.status, 429);
    });
  });

  describe(`graceful shutdown on ${engine}`, () => {
    test('SIGTERM: in-flight request completes, new connections refused, exit 0', async (t) => {
      const s = await startServer(engine, { SHUTDOWN_GRACE_MS: '5000' });
      t.after(() => s.stop());
      const body = JSON.stringify({ email: 'slow@example.com', password: 'correct horse battery' });
      // A request whose body arrives slowly is in flight while the signal lands.
      const sock = connect(s.port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write(
        `POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
      );
      let answer = '';
      sock.on('data', (d) => (answer += d.toString()));
      const closed = new Promise((r) => sock.once('close', r));
      // In flight: the scrape itself and the slow signup.
      await eventually(async () => (await metric(s.url, 'onebox_http_requests_in_flight')) >= 2, {
        what: 'the slow signup to be in flight',
      });
      s.proc.kill('SIGTERM');
      await s.waitForLine((l) => l.msg === 'draining');
      await assert.rejects(fetch(`${s.url}/healthz`));
      sock.write(body.slice(10));
      await eventually(closed, { what: 'the in-flight signup to be answered and its connection closed' });
      assert.match(answer, /^HTTP\/1\.1 201/);
      const { code } = await eventually(s.exited, { what: 'the server to exit after draining' });
      assert.equal(code, 0);
    });
  });
}

