/**
 * Apple and Google as the server sees them, on loopback: each provider's JWKS (RS256 keys
 * made here, so tests sign ID tokens the server accepts), and Apple's token and revoke
 * endpoints, which check the client secret (ES256, signed with the Sign in with Apple key
 * this kit writes to a .p8 file) as Apple does. Nothing leaves 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type IdpProvider = 'apple' | 'google';

export const APPLE_CLIENT_ID = 'com.example.onebox';
export const GOOGLE_CLIENT_ID = '1234-onebox.apps.googleusercontent.com';
export const APPLE_TEAM_ID = 'TEAM123456';
export const APPLE_KEY_ID = 'KEY1234567';
const ISSUER: Record<IdpProvider, string> = { apple: 'https://appleid.apple.com', google: 'https://accounts.google.com' };
const AUDIENCE: Record<IdpProvider, string> = { apple: APPLE_CLIENT_ID, google: GOOGLE_CLIENT_ID };

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(6).toString('hex');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

export interface SignOptions {
  /** Sign with this key (e.g. one not published) instead of the provider's current one. */
  key?: SigningKey;
  /** The header's kid. @default the key's */
  kid?: string;
  /** Seconds from now; negative for an expired token. @default 600 */
  expiresIn?: number;
}

export interface FakeIdp {
  /** Environment for a server that trusts this fake (TEST_MODE, client ids, overrides, the Apple key). */
  env: Record<string, string>;
  /** An ID token of `provider` with default iss, aud, iat, exp, overridden by `claims`. */
  sign(provider: IdpProvider, claims: JWTPayload & { sub: string }, opts?: SignOptions): Promise<string>;
  /** A key not (yet) in the provider's JWKS. */
  newKey(): Promise<SigningKey>;
  /** Publish `key` as `provider`'s current key, dropping the others (a rotation). */
  publish(provider: IdpProvider, key: SigningKey): void;
  /** JWKS requests served, per provider. */
  jwksFetches: Record<IdpProvider, number>;
  /** A fresh single-use authorization code of Apple for `sub`. */
  issueCode(sub: string): string;
  /** Refresh tokens the token endpoint handed out, in order. */
  issued: string[];
  /** Revocations Apple accepted: the token and the client id. */
  revoked: Array<{ token: string; clientId: string }>;
  /** Status the revoke endpoint answers. @default 200 */
  revokeStatus: number;
  close(): Promise<void>;
}

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

export async function startFakeIdp(): Promise<FakeIdp> {
  const current: Record<IdpProvider, SigningKey> = { apple: await signingKey(), google: await signingKey() };
  const published: Record<IdpProvider, JWK[]> = { apple: [current.apple.jwk], google: [current.google.jwk] };
  const jwksFetches = { apple: 0, google: 0 };
  const codes = new Map<string, string>();
  const issued: string[] = [];
  const revoked: Array<{ token: string; clientId: string }> = [];

  // The Sign in with Apple key of the app's team: the server signs client secrets with it.
  const team = await generateKeyPair('ES256', { extractable: true });
  const dir = mkdtempSync(join(tmpdir(), 'onebox-idp-'));
  const keyFile = join(dir, 'AuthKey.p8');
  writeFileSync(keyFile, await exportPKCS8(team.privateKey), { mode: 0o600 });

  const sign = async (provider: IdpProvider, claims: JWTPayload & { sub: string }, opts: SignOptions = {}) => {
    const key = opts.key ?? current[provider];
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: ISSUER[provider], aud: AUDIENCE[provider], iat: now, exp: now + (opts.expiresIn ?? 600), ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? key.kid })
      .sign(key.privateKey);
  };

  /** The client id when the client secret is one the app's team key signed for it, as Apple checks. */
  const clientOf = async (f: URLSearchParams): Promise<string | null> => {
    const clientId = f.get('client_id') ?? '';
    try {
      const { payload, protectedHeader } = await jwtVerify(f.get('client_secret') ?? '', team.publicKey, {
        algorithms: ['ES256'],
        issuer: APPLE_TEAM_ID,
        audience: 'https://appleid.apple.com',
        subject: clientId,
      });
      return protectedHeader.kid === APPLE_KEY_ID && typeof payload.exp === 'number' ? clientId : null;
    } catch {
      return null;
    }
  };

  const idp: FakeIdp = {
    env: {},
    sign,
    newKey: signingKey,
    publish(provider, key) {
      current[provider] = key;
      published[provider] = [key.jwk];
    },
    jwksFetches,
    issueCode(sub) {
      const code = `c-${randomBytes(8).toString('hex')}`;
      codes.set(code, sub);
      return code;
    },
    issued,
    revoked,
    revokeStatus: 200,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const server: Server = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'GET' && (path === '/apple/keys' || path === '/google/certs')) {
        const provider: IdpProvider = path === '/apple/keys' ? 'apple' : 'google';
        jwksFetches[provider]++;
        return json(200, { keys: published[provider] });
      }
      if (req.method === 'POST' && path === '/apple/token') {
        const f = await form(req);
        const clientId = await clientOf(f);
        if (!clientId) return json(400, { error: 'invalid_client' });
        const sub = codes.get(f.get('code') ?? '');
        if (f.get('grant_type') !== 'authorization_code' || sub === undefined) return json(400, { error: 'invalid_grant' });
        codes.delete(f.get('code')!);
        const refresh = `r-${randomBytes(12).toString('hex')}`;
        issued.push(refresh);
        return json(200, { access_token: 'a', token_type: 'Bearer', expires_in: 3600, refresh_token: refresh, id_token: await sign('apple', { sub, aud: clientId }) });
      }
      if (req.method === 'POST' && path === '/apple/revoke') {
        const f = await form(req);
        const clientId = await clientOf(f);
        if (!clientId) return json(400, { error: 'invalid_client' });
        if (idp.revokeStatus !== 200) return json(idp.revokeStatus, { error: 'server_error' });
        revoked.push({ token: f.get('token') ?? '', clientId });
        res.writeHead(200).end();
        return;
      }
      json(404, { error: 'not_found' });
    })().catch((err: unknown) => json(500, { error: String(err) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  Object.assign(idp.env, {
    TEST_MODE: 'true',
    APPLE_CLIENT_IDS: APPLE_CLIENT_ID,
    GOOGLE_CLIENT_IDS: GOOGLE_CLIENT_ID,
    APPLE_KEY_FILE: keyFile,
    APPLE_KEY_ID,
    APPLE_TEAM_ID,
    TEST_APPLE_JWKS_URL: `${base}/apple/keys`,
    TEST_APPLE_TOKEN_URL: `${base}/apple/token`,
    TEST_APPLE_REVOKE_URL: `${base}/apple/revoke`,
    TEST_GOOGLE_JWKS_URL: `${base}/google/certs`,
  });
  return idp;
}
