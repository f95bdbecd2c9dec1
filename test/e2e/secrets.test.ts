/**
 * Issue 11, item 6: no token, admin token or password reaches any log line or metric
 * label. The server runs at debug (one line per request) and gets the secrets every way a
 * client can send them; then the whole of stdout and stderr, and the /metrics text, are
 * searched for them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, api, ENGINES, runCli, startServer, type Running } from '../kit/server.js';
import { openWs, refusedUpgrade } from '../kit/ws.js';
import { rawHttp } from '../kit/raw-http.js';

for (const engine of ENGINES) {
  describe(`secrets stay out of logs and metrics on ${engine}`, () => {
    let s: Running;
    let user: { token: string; id: string; email: string };
    const password = `pw-${randomBytes(12).toString('hex')}`;
    before(async () => {
      s = await startServer(engine, { LOG_LEVEL: 'debug', AUTH_RATE_PER_MIN: '1000' });
      const email = `secrets-${randomBytes(6).toString('hex')}@example.com`;
      const r = await api(s.url, 'POST', '/v1/auth/signup', { body: { email, password } });
      assert.equal(r.status, 201);
      user = { token: r.body.token, id: r.body.user.id, email };
    });
    after(() => s.stop());

    test('a JWT, the admin token and a password sent every way appear in no output line and no metric', async () => {
      const jwt = user.token;
      // Query names as written and percent-encoded, which URLSearchParams (and so the
      // WebSocket upgrade) decodes to the same parameter.
      for (const q of ['token', '%74oken', 'to%6Ben', 'TOKEN', 'access_token', 'refresh_token']) {
        const r = await api(s.url, 'GET', `/v1/me?${q}=${jwt}&x=1`, { token: jwt });
        assert.equal(r.status, 200, q);
      }
      assert.equal((await api(s.url, 'GET', `/v1/devices?%74oken=${jwt}&y=%zz`, { token: jwt })).status, 200);
      assert.equal((await api(s.url, 'GET', `/v1/ws?to%6Ben=${jwt}`)).status, 426);
      assert.equal((await api(s.url, 'GET', `/status?admin=${ADMIN_TOKEN}`)).status, 200);
      assert.equal((await api(s.url, 'GET', `/status.json?%61dmin=${ADMIN_TOKEN}`)).status, 200);
      assert.equal((await api(s.url, 'GET', `/metrics?admin=${ADMIN_TOKEN}`, { token: ADMIN_TOKEN })).status, 200);
      const notify = await api(s.url, 'POST', '/v1/notify', { token: ADMIN_TOKEN, body: { userId: user.id, title: 't' } });
      assert.equal(notify.status, 202);
      // Passwords: right and wrong, in the body and (wrongly) in the query.
      assert.equal((await api(s.url, 'POST', '/v1/auth/login', { body: { email: user.email, password } })).status, 200);
      const wrong = `${password}-wrong`;
      assert.equal((await api(s.url, 'POST', `/v1/auth/login?password=${wrong}`, { body: { email: user.email, password: wrong } })).status, 401);
      assert.equal((await api(s.url, 'POST', '/v1/auth/login', { raw: `{"email":"${user.email}","password":"${password}"`, headers: { 'content-type': 'application/json' } })).status, 400);
      // WebSocket upgrades: accepted by an encoded name and by the header; refused ones too.
      const byQuery = await openWs(`${s.wsUrl}?to%6Ben=${jwt}`);
      await byQuery.sync();
      const byHeader = await openWs(`${s.wsUrl}?admin=${ADMIN_TOKEN}`, { authorization: `Bearer ${jwt}` });
      await byHeader.sync();
      byQuery.close();
      byHeader.close();
      assert.equal((await refusedUpgrade(`${s.wsUrl}?%74oken=${jwt}x&password=${password}`)).status, 401);
      // Requests the runtime itself finds odd: a URL with credentials (Node's Request
      // refuses it and quotes it in the error), and HTTP/1.0 without Host.
      await rawHttp(s.port, `GET http://u:${password}@x/v1/me?token=${jwt} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { end: true, timeoutMs: 3000 });
      await rawHttp(s.port, `GET /status?admin=${ADMIN_TOKEN} HTTP/1.0\r\n\r\n`, { end: true, timeoutMs: 3000 });
      await rawHttp(s.port, `GET /v1/me?to%6Ben=${jwt} HTTP/1.1\r\nHost: [bad\r\nConnection: close\r\n\r\n`, { end: true, timeoutMs: 3000 });

      const metrics = (await api(s.url, 'GET', '/metrics')).body as string;
      // Every request above has been logged (debug: one line per request) before we search.
      await s.waitForLine((l) => l.msg === 'request' && typeof l.path === 'string' && l.path.startsWith('/metrics') && !String(l.path).includes('admin'));
      const output = [...s.lines.map((l) => String(l.__raw)), ...s.stderr].join('\n');
      const [, payload, signature] = jwt.split('.');
      const secrets = { jwt, jwtPayload: payload!, jwtSignature: signature!, admin: ADMIN_TOKEN, password, wrong };
      for (const [what, secret] of Object.entries(secrets)) {
        assert.ok(!output.includes(secret), `${what} appears in the server output`);
        assert.ok(!metrics.includes(secret), `${what} appears in /metrics`);
      }
      // The search is meaningful: the requests were logged, with their secrets censored.
      assert.match(output, /"path":"\/status\?admin=\[redacted\]"/);
      assert.match(output, /"path":"\/v1\/me\?to%6Ben=\[redacted\]&x=1"/);
    });
  });
}

describe('configuration errors name a secret setting without quoting it', () => {
  test('a too-short ADMIN_TOKEN and JWT_SECRET exit non-zero, values not printed', async () => {
    const admin = `adm-${randomBytes(3).toString('hex')}`;
    const secret = `jwt-${randomBytes(3).toString('hex')}`;
    const r = await runCli(['serve'], { ADMIN_TOKEN: admin, JWT_SECRET: secret, DATA_DIR: '/nonexistent-onebox' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ADMIN_TOKEN/);
    assert.match(r.stderr, /JWT_SECRET/);
    assert.ok(!(r.stdout + r.stderr).includes(admin), 'ADMIN_TOKEN value printed');
    assert.ok(!(r.stdout + r.stderr).includes(secret), 'JWT_SECRET value printed');
  });
});
