/**
 * Sign in with Apple and Google end to end, once per engine: the server trusts a loopback
 * Apple and Google (test/kit/fake-idp.ts) through the TEST_* overrides. The verifier's
 * refusals and the linking rules are proven in test/unit/social-auth.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { APPLE_CLIENT_ID, startFakeIdp, type FakeIdp } from '../kit/fake-idp.js';
import { api, ENGINES, startServer, type Running } from '../kit/server.js';

const code = (r: { body: any }) => r.body?.error?.code;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

for (const engine of ENGINES) {
  describe(`Sign in with Apple and Google on ${engine}`, () => {
    let idp: FakeIdp;
    let s: Running;
    before(async () => {
      idp = await startFakeIdp();
      s = await startServer(engine, { ...idp.env, AUTH_RATE_PER_MIN: '1000' });
    });
    after(async () => {
      await s?.stop();
      await idp?.close();
    });

    test('Google: the first sign-in creates the account (201), the next opens it (200), its token works, a forged token is 401', async () => {
      const idToken = await idp.sign('google', { sub: `g-${engine}`, email: `g-${engine}@example.com`, email_verified: true, name: 'Gee', nonce: 'n-1' });
      const first = await api(s.url, 'POST', '/v1/auth/google', { body: { idToken, nonce: 'n-1' } });
      assert.equal(first.status, 201, JSON.stringify(first.body));
      assert.deepEqual(Object.keys(first.body).sort(), ['expiresIn', 'refreshToken', 'token', 'user'], 'the login answer');
      assert.deepEqual([first.body.user.email, first.body.user.displayName, first.body.user.emailVerified], [`g-${engine}@example.com`, 'Gee', true]);
      const me = await api(s.url, 'GET', '/v1/me', { token: first.body.token });
      const refreshed = await api(s.url, 'POST', '/v1/auth/refresh', { body: { refreshToken: first.body.refreshToken } });
      assert.equal(refreshed.status, 200, 'the refresh token of a social sign-in rotates like any other');
      assert.equal(me.body.user.id, first.body.user.id);
      const again = await api(s.url, 'POST', '/v1/auth/google', { body: { idToken, nonce: 'n-1' } });
      assert.deepEqual([again.status, again.body.user.id], [200, first.body.user.id]);
      const forged = await idp.sign('google', { sub: `g-${engine}`, aud: 'another-app.apps.googleusercontent.com' });
      const refused = await api(s.url, 'POST', '/v1/auth/google', { body: { idToken: forged } });
      assert.deepEqual([refused.status, code(refused)], [401, 'invalid_id_token']);
    });

    test('Apple with a code: the account is created, the code exchanged at Apple, and password login to it fails', async () => {
      const sub = `a-${engine}`;
      const email = `a-${engine}@privaterelay.appleid.com`;
      const issued = idp.issued.length;
      const r = await api(s.url, 'POST', '/v1/auth/apple', {
        body: { idToken: await idp.sign('apple', { sub, email, email_verified: 'true', nonce: sha256('raw-nonce') }), nonce: 'raw-nonce', code: idp.issueCode(sub), displayName: 'Ada' },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.user.displayName, 'Ada');
      assert.equal(idp.issued.length, issued + 1, 'the code was exchanged for a refresh token');
      const login = await api(s.url, 'POST', '/v1/auth/login', { body: { email, password: 'any password at all' } });
      assert.deepEqual([login.status, code(login)], [401, 'invalid_credentials']);
      const unknown = await api(s.url, 'POST', '/v1/auth/apple', { body: { idToken: await idp.sign('apple', { sub, email }), code: 'c-never-issued' } });
      assert.deepEqual([unknown.status, code(unknown)], [401, 'invalid_authorization_code']);
    });

    test("deleting an account made with Apple revokes its Apple refresh token at Apple; the account's token is then 401", async () => {
      const sub = `del-${engine}`;
      const r = await api(s.url, 'POST', '/v1/auth/apple', {
        body: { idToken: await idp.sign('apple', { sub, email: `${sub}@example.com`, email_verified: true }), code: idp.issueCode(sub) },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const refresh = idp.issued.at(-1)!;
      assert.ok(!idp.revoked.some((x) => x.token === refresh), 'not revoked before the deletion');
      const del = await api(s.url, 'DELETE', '/v1/me', { token: r.body.token });
      assert.equal(del.status, 204, JSON.stringify(del.body));
      assert.deepEqual(
        idp.revoked.filter((x) => x.token === refresh),
        [{ token: refresh, clientId: APPLE_CLIENT_ID }],
        'revoked once, for the client id it was issued to',
      );
      assert.equal((await api(s.url, 'GET', '/v1/me', { token: r.body.token })).status, 401);
    });

    test('openapi.json documents both routes with their bodies', async () => {
      const paths = (await api(s.url, 'GET', '/openapi.json')).body.paths;
      for (const p of ['/v1/auth/apple', '/v1/auth/google']) assert.ok(paths[p].post.requestBody.content['application/json'].schema, p);
    });
  });
}
