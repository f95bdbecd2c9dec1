/**
 * Issue 16, mail flows and account deletion, on both engines, against a real SMTP server
 * process (test/kit/smtp.ts): verification and reset links are single-use and never logged
 * (LOG_LEVEL=trace), forgot-password answers alike for unknown addresses and is rate limited
 * per client address and per email, the password rules hold, a change of password revokes
 * the other sessions, a change of email waits for its verification, and a deleted account's
 * tokens and socket die at once and nothing of theirs is left in the store. The store-level
 * claims (expiry, races, PostgreSQL) are in test/unit/accounts-store.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { openDb } from '../../src/store/db.js';
import { api, ENGINES, JWT_SECRET, ADMIN_TOKEN, startServer, type Running } from '../kit/server.js';
import { startSmtp, tokenOf, type SmtpServer } from '../kit/smtp.js';
import { cellsContaining } from '../kit/store-scan.js';
import { connectWs, refusedUpgrade, type Client } from '../kit/ws.js';
import { eventually } from '../kit/eventually.js';
import { createTestDatabase } from '../kit/pg.js';
import { startRedis, type RedisServer } from '../kit/redis.js';
import { clusterConnections } from '../kit/metrics.js';

const PASSWORD = 'correct horse battery';
const code = (r: { body: any }) => r.body?.error?.code;
let seq = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${Date.now()}-${seq++}@example.com`;
/** A client address of its own per call (TRUST_PROXY=1), so only the rate-limit test shares one. */
let ipSeq = 0;
const freshIp = () => `10.${(ipSeq >> 16) & 255}.${(ipSeq >> 8) & 255}.${ipSeq++ & 255}`;

for (const engine of ENGINES) {
  describe(`accounts on ${engine}`, () => {
    let smtp: SmtpServer;
    let s: Running;
    const sockets: Client[] = [];
    // Node's http client sends a DELETE body with neither Content-Length nor chunking unless told.
    const call = (method: string, path: string, opts: { token?: string; body?: unknown; ip?: string } = {}) =>
      api(s.url, method, path, {
        ...opts,
        headers: {
          'x-forwarded-for': opts.ip ?? freshIp(),
          ...(opts.body !== undefined && { 'content-length': String(Buffer.byteLength(JSON.stringify(opts.body))) }),
        },
      });
    const signup = async (email = unique('u'), password = PASSWORD) => {
      const r = await call('POST', '/v1/auth/signup', { body: { email, password } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { email, id: r.body.user.id as string, token: r.body.token as string, refreshToken: r.body.refreshToken as string };
    };
    const login = async (email: string, password = PASSWORD) => call('POST', '/v1/auth/login', { body: { email, password } });

    before(async () => {
      smtp = await startSmtp();
      s = await startServer(engine, {
        SMTP_URL: smtp.url,
        MAIL_FROM: 'onebox <no-reply@example.com>',
        APP_URL: 'https://app.example.com',
        LOG_LEVEL: 'trace',
        TRUST_PROXY: '1',
        AUTH_RATE_PER_MIN: '8',
        MAIL_PER_ADDRESS_PER_HOUR: '3',
      });
    });
    after(async () => {
      for (const c of sockets) c.close();
      await s?.stop();
      await smtp?.stop();
    });

    test('signup mails a verification link that works once; emailVerified turns true', async () => {
      const u = await signup();
      assert.equal((await call('GET', '/v1/me', { token: u.token })).body.user.emailVerified, false);
      const mail = await smtp.waitFor(u.email, (m) => /Confirm your email/.test(m.subject));
      const token = tokenOf(mail);
      assert.ok(mail.text.includes(`https://app.example.com/verify-email?token=${token}`), 'the mail links to APP_URL');
      const ok = await call('POST', '/v1/auth/verify', { body: { token } });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.user.emailVerified, true);
      assert.equal((await call('GET', '/v1/me', { token: u.token })).body.user.emailVerified, true);
      const again = await call('POST', '/v1/auth/verify', { body: { token } });
      assert.equal(again.status, 400);
      assert.equal(code(again), 'invalid_one_time_token');
    });

    test('forgot answers 202 alike for an unknown email; the reset link works once, sets the password and revokes every session', async () => {
      const u = await signup();
      const second = await login(u.email);
      const ws = await connectWs(s.wsUrl, second.body.token);
      sockets.push(ws);
      const unknown = unique('nobody');
      const [a, b] = await Promise.all([
        call('POST', '/v1/auth/password/forgot', { body: { email: unknown } }),
        call('POST', '/v1/auth/password/forgot', { body: { email: u.email } }),
      ]);
      assert.deepEqual([a.status, a.body, b.status, b.body], [202, '', 202, '']);
      const mail = await smtp.waitFor(u.email, (m) => /Reset your password/.test(m.subject));
      const token = tokenOf(mail);
      const common = await call('POST', '/v1/auth/password/reset', { body: { token, password: 'password123' } });
      assert.equal(common.status, 400);
      assert.equal(code(common), 'password_too_common');
      const reset = await call('POST', '/v1/auth/password/reset', { body: { token, password: 'a new long passphrase' } });
      assert.equal(reset.status, 204, 'the refused common password left the token unused');
      const reused = await call('POST', '/v1/auth/password/reset', { body: { token, password: 'another passphrase here' } });
      assert.equal(code(reused), 'invalid_one_time_token');
      for (const t of [u.token, second.body.token]) assert.equal((await call('GET', '/v1/me', { token: t })).status, 401);
      assert.equal((await call('POST', '/v1/auth/refresh', { body: { refreshToken: u.refreshToken } })).status, 401);
      assert.equal((await ws.waitClosed()).code, 4003, 'the live socket of a revoked session closes');
      assert.equal(code(await login(u.email)), 'invalid_credentials', 'the old password is gone');
      const fresh = await login(u.email, 'a new long passphrase');
      assert.equal(fresh.status, 200);
      assert.equal(fresh.body.user.emailVerified, true, 'answering the reset mail proves the address');
      assert.equal(smtp.mails.filter((m) => m.to.includes(unknown)).length, 0, 'no mail to the unknown address');
    });

    test('forgot is rate limited per email (MAIL_PER_ADDRESS_PER_HOUR) and per client address (AUTH_RATE_PER_MIN)', async () => {
      const email = unique('limited');
      const perEmail = [];
      for (let i = 0; i < 4; i++) perEmail.push((await call('POST', '/v1/auth/password/forgot', { body: { email } })).status);
      assert.deepEqual(perEmail, [202, 202, 202, 429]);
      const ip = freshIp();
      const perIp = [];
      for (let i = 0; i < 9; i++) perIp.push((await call('POST', '/v1/auth/password/forgot', { ip, body: { email: unique('x') } })).status);
      assert.deepEqual(perIp, [...Array(8).fill(202), 429]);
    });

    test('new passwords: 8 to 256 characters, no composition rules, common ones refused with password_too_common', async () => {
      const short = await call('POST', '/v1/auth/signup', { body: { email: unique('p'), password: 'seven77' } });
      assert.deepEqual([short.status, code(short), short.body.error.field], [400, 'validation_failed', 'password']);
      const long = await call('POST', '/v1/auth/signup', { body: { email: unique('p'), password: 'x'.repeat(257) } });
      assert.equal(code(long), 'validation_failed');
      for (const pw of ['password1', 'Password1', 'iloveyou', 'qwertyuiop']) {
        const r = await call('POST', '/v1/auth/signup', { body: { email: unique('p'), password: pw } });
        assert.deepEqual([r.status, code(r)], [400, 'password_too_common'], pw);
      }
      const email = unique('p');
      assert.equal(code(await call('POST', '/v1/auth/signup', { body: { email, password: email } })), 'password_too_common', 'the email itself');
      // Lower case only, 8 characters, and 256 characters of emoji: all fine.
      await signup(unique('p'), 'zebrakettle');
      await signup(unique('p'), '🦊'.repeat(256));
    });

    test('change password needs the current one and revokes the other sessions, not this one', async () => {
      const u = await signup();
      const other = await login(u.email);
      const wrong = await call('POST', '/v1/me/password', { token: u.token, body: { currentPassword: 'not it at all', newPassword: 'brand new secret' } });
      assert.deepEqual([wrong.status, code(wrong)], [403, 'wrong_password']);
      const common = await call('POST', '/v1/me/password', { token: u.token, body: { currentPassword: PASSWORD, newPassword: 'baseball' } });
      assert.deepEqual([code(common), common.body.error.field], ['password_too_common', 'newPassword']);
      const ok = await call('POST', '/v1/me/password', { token: u.token, body: { currentPassword: PASSWORD, newPassword: 'brand new secret' } });
      assert.equal(ok.status, 204);
      assert.equal((await call('GET', '/v1/me', { token: u.token })).status, 200, 'this session stays');
      const revoked = await call('GET', '/v1/me', { token: other.body.token });
      assert.deepEqual([revoked.status, code(revoked)], [401, 'session_revoked']);
      assert.equal((await login(u.email, 'brand new secret')).status, 200);
    });

    test('a change of email takes effect only once the new address answers its mail', async () => {
      const u = await signup();
      const target = unique('moved');
      const r = await call('POST', '/v1/me/email', { token: u.token, body: { email: target, password: PASSWORD } });
      assert.equal(r.status, 202);
      assert.deepEqual([r.body.user.email, r.body.user.pendingEmail], [u.email, target]);
      assert.equal((await login(u.email)).status, 200, 'the old address still logs in');
      const taken = await call('POST', '/v1/me/email', { token: u.token, body: { email: (await signup()).email, password: PASSWORD } });
      assert.deepEqual([taken.status, code(taken)], [409, 'email_taken']);
      const token = tokenOf(await smtp.waitFor(target, (m) => /new email/.test(m.subject)));
      const v = await call('POST', '/v1/auth/verify', { body: { token } });
      assert.deepEqual([v.status, v.body.user.email, v.body.user.emailVerified, v.body.user.pendingEmail], [200, target, true, null]);
      assert.equal((await login(target)).status, 200);
      assert.equal(code(await login(u.email)), 'invalid_credentials');
    });

    test('a deleted account: 204, its socket closes, every route and the upgrade answer 401, nothing of theirs is left in the store', async () => {
      const u = await signup();
      const room = `room:del-${seq++}`;
      const admin = { token: ADMIN_TOKEN };
      assert.equal((await call('PUT', `/v1/topics/${room}/members/${u.id}`, admin)).status, 201);
      assert.equal((await call('POST', '/v1/devices', { token: u.token, body: { platform: 'android', token: `fcm-${'y'.repeat(30)}` } })).status, 201);
      assert.equal((await call('POST', '/v1/events', { token: u.token, body: { events: [{ type: 'app.open', ts: Date.now() }] } })).status, 202);
      const sent = await call('POST', '/v1/notify', { ...admin, body: { userId: u.id, title: 'hi', body: 'there' } });
      assert.equal(sent.status, 202);
      assert.equal((await call('POST', '/v1/receipts', { token: u.token, body: { topic: `user:${u.id}`, offset: sent.body.offset } })).status, 204);
      const ws = await connectWs(s.wsUrl, u.token);
      sockets.push(ws);
      ws.send({ op: 'pub', id: 'p1', topic: room, data: { said: 'hello' }, key: 'k1' });
      await ws.next((f) => f.op === 'ack' && f.id === 'p1');

      const del = await call('DELETE', '/v1/me', { token: u.token, body: { password: PASSWORD } });
      assert.equal(del.status, 204);
      assert.equal((await ws.waitClosed()).code, 4003, 'the live socket closes at once');
      const routes: Array<[string, string, unknown?]> = [
        ['GET', '/v1/me'],
        ['PATCH', '/v1/me', { displayName: 'x' }],
        ['DELETE', '/v1/me', { password: PASSWORD }],
        ['POST', '/v1/me/password', { currentPassword: PASSWORD, newPassword: 'brand new secret' }],
        ['POST', '/v1/me/email', { email: unique('z'), password: PASSWORD }],
        ['GET', '/v1/me/sessions'],
        ['GET', '/v1/devices'],
        ['POST', '/v1/devices', { platform: 'android', token: `fcm-${'z'.repeat(30)}` }],
        ['POST', '/v1/events', { events: [{ type: 'app.open', ts: Date.now() }] }],
        ['POST', '/v1/receipts', { topic: `user:${u.id}`, offset: 1 }],
        ['GET', `/v1/users/${u.id}/dashboard`],
      ];
      for (const [method, path, body] of routes) {
        const r = await call(method, path, { token: u.token, body });
        assert.equal(r.status, 401, `${method} ${path}`);
      }
      assert.equal((await call('POST', '/v1/auth/refresh', { body: { refreshToken: u.refreshToken } })).status, 401, 'refresh');
      assert.equal((await refusedUpgrade(`${s.wsUrl}?token=${u.token}`)).status, 401, 'the upgrade');
      assert.equal(code(await login(u.email)), 'invalid_credentials');

      const db = await openDb({ databaseUrl: undefined, dataDir: s.dataDir });
      try {
        // token_cutoffs keeps the user's "not before" (no foreign key, by design of the
        // sessions store): other processes polling for revocations must still see it.
        const left = [...(await cellsContaining(db, u.id)), ...(await cellsContaining(db, u.email))].filter((c) => !c.startsWith('token_cutoffs.'));
        assert.deepEqual(left, []);
        const shared = await db.selectFrom('messages').select(['data', 'from_user']).where('topic', '=', room).execute();
        assert.deepEqual(shared.map((m) => [JSON.parse(m.data).said, m.from_user]), [['hello', null]], "the room keeps the message, de-attributed");
      } finally {
        await db.destroy();
      }
    });

    test('DELETE /v1/me without the password: with a fresh login 204, with a token from long ago 403 reauthentication_required', async () => {
      const u = await signup();
      const old = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(u.id)
        .setIssuer('onebox')
        .setAudience('onebox:access')
        .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(JWT_SECRET));
      const stale = await call('DELETE', '/v1/me', { token: old });
      assert.deepEqual([stale.status, code(stale)], [403, 'reauthentication_required']);
      assert.equal((await call('GET', '/v1/me', { token: u.token })).status, 200, 'still there');
      assert.equal((await call('DELETE', '/v1/me', { token: u.token })).status, 204);
      assert.equal((await call('GET', '/v1/me', { token: u.token })).status, 401);
    });

    test('no token of any mail appears in the server log, at LOG_LEVEL=trace', () => {
      const tokens = smtp.mails.map((m) => /code: ([A-Za-z0-9_-]+)/.exec(m.text)?.[1]).filter((t): t is string => t !== undefined);
      assert.ok(tokens.length >= 4, `the tests above received mails with tokens (${tokens.length})`);
      const log = [...s.lines.map((l) => String(l.__raw)), ...s.stderr].join('\n');
      assert.ok(log.includes('"route":"/v1/auth/password/reset"'), 'requests were logged');
      for (const t of tokens) assert.ok(!log.includes(t), 'a mailed token is in the log');
    });
  });

  describe(`verification required and enumeration-safe signup on ${engine}`, () => {
    let smtp: SmtpServer;
    let s: Running;
    before(async () => {
      smtp = await startSmtp();
      s = await startServer(engine, {
        SMTP_URL: smtp.url,
        MAIL_FROM: 'onebox <no-reply@example.com>',
        REQUIRE_EMAIL_VERIFICATION: 'true',
        SIGNUP_ENUMERATION_SAFE: 'true',
        AUTH_RATE_PER_MIN: '1000',
      });
    });
    after(async () => {
      await s?.stop();
      await smtp?.stop();
    });

    test('signup answers 202 alike for a new and a taken email; login waits for the verification; the taken address is told it has an account', async () => {
      const email = unique('v');
      const first = await api(s.url, 'POST', '/v1/auth/signup', { body: { email, password: PASSWORD } });
      const again = await api(s.url, 'POST', '/v1/auth/signup', { body: { email, password: 'some other passphrase' } });
      assert.deepEqual([first.status, first.body, again.status, again.body], [202, '', 202, '']);
      const refused = await api(s.url, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
      assert.deepEqual([refused.status, code(refused)], [403, 'email_not_verified']);
      const wrong = await api(s.url, 'POST', '/v1/auth/login', { body: { email, password: 'not the password' } });
      assert.equal(code(wrong), 'invalid_credentials', 'the verification state shows only to the password holder');
      await smtp.waitFor(email, (m) => /already have an account/.test(m.subject));
      const token = tokenOf(await smtp.waitFor(email, (m) => /Confirm your email/.test(m.subject)));
      assert.equal((await api(s.url, 'POST', '/v1/auth/verify', { body: { token } })).status, 200);
      const ok = await api(s.url, 'POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
      assert.deepEqual([ok.status, ok.body.user.emailVerified], [200, true]);
      const other = await api(s.url, 'POST', '/v1/auth/login', { body: { email, password: 'some other passphrase' } });
      assert.equal(code(other), 'invalid_credentials', 'the second signup changed nothing');
    });

    test('resend mails a new link to an unverified account and answers 202 for any address; the new link supersedes the old', async () => {
      const email = unique('r');
      assert.equal((await api(s.url, 'POST', '/v1/auth/signup', { body: { email, password: PASSWORD } })).status, 202);
      const oldToken = tokenOf(await smtp.waitFor(email, (m) => /Confirm your email/.test(m.subject)));
      const nobody = await api(s.url, 'POST', '/v1/auth/verify/resend', { body: { email: unique('nobody') } });
      const resent = await api(s.url, 'POST', '/v1/auth/verify/resend', { body: { email } });
      assert.deepEqual([nobody.status, resent.status], [202, 202]);
      const newToken = tokenOf(await smtp.waitFor(email, (m) => /Confirm your email/.test(m.subject) && !m.text.includes(oldToken)));
      assert.equal(code(await api(s.url, 'POST', '/v1/auth/verify', { body: { token: oldToken } })), 'invalid_one_time_token');
      assert.equal((await api(s.url, 'POST', '/v1/auth/verify', { body: { token: newToken } })).status, 200);
    });
  });
}

describe('account deletion with WORKERS=3, Redis and PostgreSQL on bun', () => {
  let redis: RedisServer;
  let pgdb: { url: string; drop(): Promise<void> };
  let s: Running;
  const sockets: Client[] = [];
  before(async () => {
    [redis, pgdb] = await Promise.all([startRedis(), createTestDatabase()]);
    // A long user check: every worker's cache keeps vouching for the user, so only the
    // revocation can turn their token down on the workers that did not delete them.
    s = await startServer('bun', { WORKERS: '3', REDIS_URL: redis.url, DATABASE_URL: pgdb.url, USER_CHECK_TTL_MS: '600000', AUTH_RATE_PER_MIN: '1000' });
  });
  after(async () => {
    for (const c of sockets) c.close();
    await s?.stop();
    await redis?.stop();
    await pgdb?.drop();
  });

  test("the account's sockets close with 4003 and its token answers 401 on every worker (3 s deadline, the revocation's one-second bound is the sessions tests' claim); PostgreSQL keeps nothing of theirs", async () => {
    const email = unique('cluster');
    const r = await api(s.url, 'POST', '/v1/auth/signup', { body: { email, password: PASSWORD } });
    assert.equal(r.status, 201);
    const { token, user } = r.body as { token: string; user: { id: string } };
    for (let i = 0; i < 9; i++) sockets.push(await connectWs(s.wsUrl, token));
    await eventually(async () => [...(await clusterConnections(s.url)).values()].filter((w) => w.n > 0).length >= 2, {
      what: "the account's 9 connections to spread over at least two workers",
    });
    // Each request is a new connection, spread over the workers: all of them cache the user.
    for (let i = 0; i < 9; i++) assert.equal((await api(s.url, 'GET', '/v1/me', { token })).status, 200);

    const del = await api(s.url, 'DELETE', '/v1/me', { token, body: { password: PASSWORD }, headers: { 'content-length': String(JSON.stringify({ password: PASSWORD }).length) } });
    assert.equal(del.status, 204);
    const closes = await Promise.all(sockets.map((c) => c.waitClosed(3000)));
    assert.deepEqual(closes.map((c) => c.code), Array(9).fill(4003));
    await eventually(async () => {
      for (let i = 0; i < 9; i++) if ((await api(s.url, 'GET', '/v1/me', { token })).status !== 401) return false;
      return true;
    }, { timeoutMs: 3000, what: 'nine requests in a row, over the workers, to answer 401' });

    const db = await openDb({ databaseUrl: pgdb.url, dataDir: '' });
    try {
      const left = [...(await cellsContaining(db, user.id)), ...(await cellsContaining(db, email))].filter((c) => !c.startsWith('token_cutoffs.'));
      assert.deepEqual(left, []);
    } finally {
      await db.destroy();
    }
  });
});

