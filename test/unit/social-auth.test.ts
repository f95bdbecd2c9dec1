/**
 * Sign in with Apple and Google (issue 16): the ID-token verifier against a loopback JWKS
 * (forged tokens, nonces, key rotation), Apple's code exchange and revocation against a
 * loopback Apple, and the identity store's linking rules on SQLite and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT, UnsecuredJWT } from 'jose';
import { AppleClient } from '../../src/app/auth/apple.js';
import { IdTokenVerifier, type Provider } from '../../src/app/auth/id-tokens.js';
import { verifyPassword } from '../../src/app/auth/passwords.js';
import { SocialSignIn } from '../../src/app/auth/social.js';
import { AppError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { openDb, type Db } from '../../src/store/db.js';
import { AccountStore } from '../../src/store/accounts.js';
import { IdentityStore, type ProviderAccount } from '../../src/store/identities.js';
import { OneTimeTokenStore } from '../../src/store/one-time-tokens.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { NO_PASSWORD, UserStore } from '../../src/store/users.js';
import { APPLE_CLIENT_ID, APPLE_KEY_ID, APPLE_TEAM_ID, GOOGLE_CLIENT_ID, startFakeIdp, type FakeIdp } from '../kit/fake-idp.js';
import { eventually } from '../kit/eventually.js';
import { createTestStore } from '../kit/pg.js';
import { cellsContaining } from '../kit/store-scan.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The AppError `fn` rejects with (fails when it resolves). */
async function refusal(fn: () => Promise<unknown>): Promise<AppError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

let idp: FakeIdp;
before(async () => {
  idp = await startFakeIdp();
});
after(async () => {
  await idp.close();
});

const verifier = (provider: Provider, cooldownMs?: number) =>
  new IdTokenVerifier(provider, {
    clientIds: [provider === 'apple' ? APPLE_CLIENT_ID : GOOGLE_CLIENT_ID, 'another-app'],
    timeoutMs: 2000,
    jwksUrl: idp.env[provider === 'apple' ? 'TEST_APPLE_JWKS_URL' : 'TEST_GOOGLE_JWKS_URL'],
    cooldownMs,
  });

describe('ID-token verifier', () => {
  test('a Google token verifies under both issuer forms and yields subject, audience and email', async () => {
    const v = verifier('google');
    for (const iss of ['https://accounts.google.com', 'accounts.google.com']) {
      const claims = await v.verify(await idp.sign('google', { sub: 'g-1', iss, email: 'Ann@Example.com', email_verified: true, name: 'Ann' }), undefined);
      assert.deepEqual(claims, { provider: 'google', subject: 'g-1', clientId: GOOGLE_CLIENT_ID, email: 'ann@example.com', emailVerified: true, name: 'Ann' });
    }
  });

  test("Apple's email_verified may be the string \"true\"; an unverified or absent email is not verified", async () => {
    const v = verifier('apple');
    assert.equal((await v.verify(await idp.sign('apple', { sub: 'a-1', email: 'a@example.com', email_verified: 'true' }), undefined)).emailVerified, true);
    assert.equal((await v.verify(await idp.sign('apple', { sub: 'a-1', email: 'a@example.com', email_verified: 'false' }), undefined)).emailVerified, false);
    const none = await v.verify(await idp.sign('apple', { sub: 'a-1' }), undefined);
    assert.deepEqual([none.email, none.emailVerified], [null, false]);
  });

  test("nonce: Apple's token carries the SHA-256 hex of the raw nonce, Google's the nonce itself", async () => {
    const raw = 'n-0123456789';
    assert.equal((await verifier('apple').verify(await idp.sign('apple', { sub: 'a-2', nonce: sha256(raw) }), raw)).subject, 'a-2');
    assert.equal((await verifier('google').verify(await idp.sign('google', { sub: 'g-2', nonce: raw }), raw)).subject, 'g-2');
  });

  test('forged or unbound tokens are 401 invalid_id_token', async () => {
    const g = verifier('google');
    const a = verifier('apple');
    const stranger = await idp.newKey();
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['wrong audience', async () => g.verify(await idp.sign('google', { sub: 'x', aud: 'someone-else.apps.googleusercontent.com' }), undefined)],
      ["another provider's issuer", async () => g.verify(await idp.sign('google', { sub: 'x', iss: 'https://appleid.apple.com' }), undefined)],
      ['wrong issuer (Apple)', async () => a.verify(await idp.sign('apple', { sub: 'x', iss: 'https://appleid.apple.com.evil' }), undefined)],
      ['expired', async () => g.verify(await idp.sign('google', { sub: 'x' }, { expiresIn: -120 }), undefined)],
      ['issued in the future', async () => g.verify(await idp.sign('google', { sub: 'x', iat: Math.floor(Date.now() / 1000) + 3600 }, { expiresIn: 7200 }), undefined)],
      ['unknown kid', async () => g.verify(await idp.sign('google', { sub: 'x' }, { key: stranger }), undefined)],
      ["wrong signature (a stranger's key under the published kid)", async () => {
        const published = (await idp.sign('google', { sub: 'x' })).split('.')[0]!;
        const forged = (await idp.sign('google', { sub: 'x' }, { key: stranger })).split('.');
        return g.verify([published, forged[1], forged[2]].join('.'), undefined);
      }],
      ['alg none', async () => g.verify(new UnsecuredJWT({ sub: 'x', iss: 'https://accounts.google.com', aud: GOOGLE_CLIENT_ID }).setIssuedAt().setExpirationTime('10m').encode(), undefined)],
      ['HS256 (a shared-secret token)', async () => {
        const secret = new TextEncoder().encode('a-secret-of-at-least-thirty-two-bytes!!');
        const now = Math.floor(Date.now() / 1000);
        const t = await new SignJWT({ sub: 'x', iss: 'https://accounts.google.com', aud: GOOGLE_CLIENT_ID, iat: now, exp: now + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(secret);
        return g.verify(t, undefined);
      }],
      ['not a JWT', async () => g.verify('not.a.jwt', undefined)],
      ['no subject', async () => g.verify(await idp.sign('google', { sub: '' }), undefined)],
      ['bad nonce', async () => g.verify(await idp.sign('google', { sub: 'x', nonce: 'one' }), 'another')],
      ['Apple token with the raw nonce instead of its hash', async () => a.verify(await idp.sign('apple', { sub: 'x', nonce: 'raw' }), 'raw')],
      ['a nonce in the token the request does not prove', async () => g.verify(await idp.sign('google', { sub: 'x', nonce: 'n' }), undefined)],
      ['a request nonce the token lacks', async () => g.verify(await idp.sign('google', { sub: 'x' }), 'n')],
    ];
    for (const [name, attempt] of cases) {
      const e = await refusal(attempt);
      assert.deepEqual([e.code, e.status], ['invalid_id_token', 401], name);
    }
  });

  test('a rotated key: an unknown kid fetches the JWKS again and verifies with the new key', async () => {
    const v = verifier('apple', 0);
    await v.verify(await idp.sign('apple', { sub: 'r' }), undefined);
    const before = idp.jwksFetches.apple;
    const next = await idp.newKey();
    idp.publish('apple', next);
    assert.equal((await v.verify(await idp.sign('apple', { sub: 'r' }, { key: next }), undefined)).subject, 'r');
    assert.equal(idp.jwksFetches.apple, before + 1, 'one refetch for the unknown kid');
    await v.verify(await idp.sign('apple', { sub: 'r' }, { key: next }), undefined);
    assert.equal(idp.jwksFetches.apple, before + 1, 'the known kid is served from the cache');
  });

  test('within the cooldown an unknown kid is refused without fetching again', async () => {
    const v = verifier('google', 60_000);
    await v.verify(await idp.sign('google', { sub: 'c' }), undefined);
    const before = idp.jwksFetches.google;
    const e = await refusal(async () => v.verify(await idp.sign('google', { sub: 'c' }, { kid: 'made-up' }), undefined));
    assert.equal(e.code, 'invalid_id_token');
    assert.equal(idp.jwksFetches.google, before);
  });

  test('an unreachable JWKS is 502 provider_unavailable', async () => {
    const v = new IdTokenVerifier('google', { clientIds: [GOOGLE_CLIENT_ID], timeoutMs: 2000, jwksUrl: 'http://127.0.0.1:1/certs' });
    const e = await refusal(async () => v.verify(await idp.sign('google', { sub: 'u' }), undefined));
    assert.deepEqual([e.code, e.status], ['provider_unavailable', 502]);
  });
});

describe("Apple's code exchange and revocation", () => {
  const client = () =>
    new AppleClient({
      key: { file: idp.env.APPLE_KEY_FILE!, id: APPLE_KEY_ID, teamId: APPLE_TEAM_ID },
      timeoutMs: 2000,
      tokenUrl: idp.env.TEST_APPLE_TOKEN_URL,
      revokeUrl: idp.env.TEST_APPLE_REVOKE_URL,
    });

  test('a code is exchanged once for a refresh token; a reused code or one of another user is 401', async () => {
    const c = client();
    const code = idp.issueCode('apple-sub-1');
    const token = await c.exchange(code, APPLE_CLIENT_ID, 'apple-sub-1');
    assert.equal(token, idp.issued.at(-1));
    assert.equal((await refusal(() => c.exchange(code, APPLE_CLIENT_ID, 'apple-sub-1'))).code, 'invalid_authorization_code');
    const other = idp.issueCode('apple-sub-2');
    assert.equal((await refusal(() => c.exchange(other, APPLE_CLIENT_ID, 'apple-sub-1'))).code, 'invalid_authorization_code');
  });

  test('revoke sends the token with a client secret Apple accepts; a failing Apple is 502', async () => {
    const c = client();
    await c.revoke('r-some-token', APPLE_CLIENT_ID);
    assert.deepEqual(idp.revoked.at(-1), { token: 'r-some-token', clientId: APPLE_CLIENT_ID });
    idp.revokeStatus = 503;
    try {
      assert.equal((await refusal(() => c.revoke('r-other', APPLE_CLIENT_ID))).code, 'provider_unavailable');
    } finally {
      idp.revokeStatus = 200;
    }
  });
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`identities on ${dialect}`, () => {
    let db: Db;
    let cleanup: () => Promise<void>;
    let identities: IdentityStore;
    let users: UserStore;
    before(async () => {
      const store = await createTestStore(dialect, 'onebox-identities-');
      cleanup = store.cleanup;
      db = await openDb(store.config);
      await migrateToLatest(db);
      identities = new IdentityStore(db);
      users = new UserStore(db);
    });
    after(async () => {
      await db.destroy();
      await cleanup();
    });

    const account = (over: Partial<ProviderAccount> & { subject: string }): ProviderAccount => ({
      provider: 'google',
      clientId: GOOGLE_CLIENT_ID,
      email: `${over.subject}@example.com`,
      emailVerified: true,
      displayName: null,
      ...over,
    });

    test('a first sign-in creates a password-less account; the next finds it by subject and records a new email', async () => {
      const first = await identities.signIn(account({ subject: 's1', displayName: 'Sam' }));
      assert.ok(first.kind === 'user' && first.created);
      assert.equal(first.user.password_hash, NO_PASSWORD);
      assert.equal(await verifyPassword('any password', first.user.password_hash), false);
      const again = await identities.signIn(account({ subject: 's1', email: 'new-address@example.com' }));
      assert.ok(again.kind === 'user' && !again.created && !again.linked);
      assert.equal(again.user.id, first.user.id);
      assert.deepEqual((await identities.list(first.user.id)).map((i) => i.email), ['new-address@example.com']);
    });

    test("a provider's verified email does not link to a password account whose email is unverified", async () => {
      const victim = (await users.create('victim@example.com', 'scrypt$hash', null))!;
      assert.deepEqual(await identities.signIn(account({ subject: 'attacker', email: 'victim@example.com' })), { kind: 'email_taken' });
      assert.deepEqual(await identities.list(victim.id), []);
    });

    test("a provider's verified email links to a password account whose email is verified", async () => {
      const owner = (await users.create('owner@example.com', 'scrypt$hash', null, { emailVerified: true }))!;
      const r = await identities.signIn(account({ subject: 'owner-google', email: 'owner@example.com' }));
      assert.ok(r.kind === 'user' && r.linked && !r.created);
      assert.equal(r.user.id, owner.id);
      assert.equal(r.user.password_hash, 'scrypt$hash', 'the password stays');
    });

    test("a new account's email is verified when the provider vouches for it, and becomes verified when it later does", async () => {
      const vouched = await identities.signIn(account({ subject: 'v-yes', email: 'v-yes@example.com' }));
      assert.ok(vouched.kind === 'user' && vouched.user.email_verified === 1);
      const soft = await identities.signIn(account({ subject: 'v-later', email: 'v-later@example.com', emailVerified: false }));
      assert.ok(soft.kind === 'user' && soft.user.email_verified === 0);
      const later = await identities.signIn(account({ subject: 'v-later', email: 'v-later@example.com' }));
      assert.ok(later.kind === 'user' && later.user.email_verified === 1);
      assert.equal(Number((await users.byId(soft.user.id))!.email_verified), 1);
    });

    test('an email the provider does not vouch for never links, and an account whose own email is unverified is never linked to', async () => {
      const created = await identities.signIn(account({ subject: 'g-unverified', email: 'soft@example.com', emailVerified: false }));
      assert.ok(created.kind === 'user' && created.created);
      // The account's email came unverified: a verified Apple sign-in with it must not link.
      assert.deepEqual(await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'a-soft', email: 'soft@example.com' })), { kind: 'email_taken' });
      // And an unverified email never links, even to a verified account.
      await identities.signIn(account({ subject: 'g-hard', email: 'hard@example.com' }));
      assert.deepEqual(await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'a-hard', email: 'hard@example.com', emailVerified: false })), { kind: 'email_taken' });
    });

    test('both emails verified: a second provider links to the account', async () => {
      const google = await identities.signIn(account({ subject: 'g-both', email: 'both@example.com' }));
      const apple = await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'a-both', email: 'both@example.com', refreshToken: 'r-1' }));
      assert.ok(google.kind === 'user' && apple.kind === 'user' && apple.linked);
      assert.equal(apple.user.id, google.user.id);
      assert.deepEqual((await identities.list(google.user.id)).map((i) => i.provider).sort(), ['apple', 'google']);
    });

    test('no identity and no email: email_required, nothing written', async () => {
      assert.deepEqual(await identities.signIn(account({ subject: 'mute', email: null })), { kind: 'email_required' });
      assert.equal(await db.selectFrom('identities').select('user_id').where('subject', '=', 'mute').executeTakeFirst(), undefined);
    });

    test("Apple's refresh token: kept, replaced by the next exchange, kept when a sign-in brings none, gone with the user", async () => {
      const first = await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'a-tok', refreshToken: 'r-old' }));
      assert.ok(first.kind === 'user');
      await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'a-tok', refreshToken: 'r-new' }));
      await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'a-tok' }));
      assert.deepEqual(await identities.appleTokens(first.user.id), [{ refreshToken: 'r-new', clientId: APPLE_CLIENT_ID }]);
      await db.deleteFrom('users').where('id', '=', first.user.id).execute();
      assert.deepEqual(await identities.list(first.user.id), []);
    });

    test('deleting the account leaves nothing of its identities: no row, no refresh token, no subject', async () => {
      const r = await identities.signIn(account({ provider: 'apple', clientId: APPLE_CLIENT_ID, subject: 'apple-subject-to-delete', refreshToken: 'r-secret-to-delete' }));
      assert.ok(r.kind === 'user');
      assert.equal(await new AccountStore(db, new OneTimeTokenStore(db)).deleteUser(r.user.id), true);
      for (const needle of [r.user.id, 'apple-subject-to-delete', 'r-secret-to-delete']) assert.deepEqual(await cellsContaining(db, needle), [], needle);
    });

    test('concurrent first sign-ins of one subject make one account and one identity', async () => {
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => identities.signIn(account({ subject: 'racer' }))));
      const ids = new Set(outcomes.map((o) => (o.kind === 'user' ? o.user.id : o.kind)));
      assert.equal(ids.size, 1, JSON.stringify(outcomes.map((o) => o.kind)));
      assert.equal(outcomes.filter((o) => o.kind === 'user' && o.created).length, 1);
      const rows = await db.selectFrom('users').select('id').where('email', '=', 'racer@example.com').execute();
      assert.equal(rows.length, 1);
    });
  });
}

describe('SocialSignIn', () => {
  let db: Db;
  let cleanup: () => Promise<void>;
  before(async () => {
    const store = await createTestStore('sqlite', 'onebox-social-');
    cleanup = store.cleanup;
    db = await openDb(store.config);
    await migrateToLatest(db);
  });
  after(async () => {
    await db.destroy();
    await cleanup();
  });

  const social = () =>
    new SocialSignIn({
      verifiers: { apple: verifier('apple') },
      apple: new AppleClient({
        key: { file: idp.env.APPLE_KEY_FILE!, id: APPLE_KEY_ID, teamId: APPLE_TEAM_ID },
        timeoutMs: 2000,
        tokenUrl: idp.env.TEST_APPLE_TOKEN_URL,
        revokeUrl: idp.env.TEST_APPLE_REVOKE_URL,
      }),
      identities: new IdentityStore(db),
      log: createLogger('silent'),
    });

  test('an Apple sign-in with a code keeps the refresh token; revokeAppleTokens revokes it at Apple', async () => {
    const s = social();
    const { user, created } = await s.signIn('apple', { idToken: await idp.sign('apple', { sub: 'ss-1', email: 'ss1@example.com', email_verified: true }), code: idp.issueCode('ss-1') });
    assert.ok(created);
    const refresh = idp.issued.at(-1)!;
    assert.equal(await s.revokeAppleTokens(user.id), 1);
    assert.deepEqual(idp.revoked.at(-1), { token: refresh, clientId: APPLE_CLIENT_ID });
  });

  test('an Apple sign-in refused after the code exchange revokes the token it got', async () => {
    const s = social();
    const idToken = await idp.sign('apple', { sub: 'ss-none' });
    const e = await refusal(async () => s.signIn('apple', { idToken, code: idp.issueCode('ss-none') }));
    assert.equal(e.code, 'email_required');
    const refresh = idp.issued.at(-1)!;
    await eventually(() => idp.revoked.some((r) => r.token === refresh), { what: 'the unused refresh token to be revoked at Apple' });
  });

  test('a failing revocation is logged, not thrown', async () => {
    const s = social();
    const { user } = await s.signIn('apple', { idToken: await idp.sign('apple', { sub: 'ss-2', email: 'ss2@example.com', email_verified: true }), code: idp.issueCode('ss-2') });
    idp.revokeStatus = 500;
    try {
      assert.equal(await s.revokeAppleTokens(user.id), 0);
    } finally {
      idp.revokeStatus = 200;
    }
  });

  test('with REQUIRE_EMAIL_VERIFICATION an unverified email is 403 email_not_verified, a vouched one signs in', async () => {
    const s = new SocialSignIn({ verifiers: { google: verifier('google') }, identities: new IdentityStore(db), log: createLogger('silent'), requireVerifiedEmail: true });
    const e = await refusal(async () => s.signIn('google', { idToken: await idp.sign('google', { sub: 'rv-1', email: 'rv1@example.com', email_verified: false }) }));
    assert.deepEqual([e.code, e.status], ['email_not_verified', 403]);
    const ok = await s.signIn('google', { idToken: await idp.sign('google', { sub: 'rv-2', email: 'rv2@example.com', email_verified: true }) });
    assert.equal(ok.user.email, 'rv2@example.com');
  });

  test('a provider that is not configured is 404 provider_disabled', async () => {
    const e = await refusal(async () => social().signIn('google', { idToken: await idp.sign('google', { sub: 'x' }) }));
    assert.deepEqual([e.code, e.status], ['provider_disabled', 404]);
  });
});
