/**
 * Access tokens and subscription tokens: HS256 JWTs via jose. Verification pins the
 * algorithm, so `alg: none` and any asymmetric-key confusion are refused, and checks expiry
 * and the audience: `onebox:access` for access tokens, `onebox:sub` for subscription tokens,
 * exactly (a single string, not a list that holds it), so neither is ever taken for the
 * other even when both are signed with the same secret. An access token's subject must
 * still exist (a deleted user's token, however well signed, is `invalid_token`). HTTP
 * routes and the WebSocket gateway both verify here, so neither needs the store.
 */
import { SignJWT, errors, jwtVerify } from 'jose';
import { AppError } from '../../errors.js';
import type { Authentication } from '../../realtime/gateway.js';

const ISSUER = 'onebox';
/** The `aud` of access tokens. */
export const ACCESS_AUDIENCE = 'onebox:access';
/** The `aud` of subscription tokens. */
export const SUB_AUDIENCE = 'onebox:sub';

/** What a verified access token says: its user, expiry and issue time (epoch seconds), session. */
export interface AccessClaims {
  userId: string;
  exp: number;
  iat: number;
  sid: string | undefined;
}

const importKey = (secret: string) =>
  crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);

export class TokenService {
  // Imported once: handing jose raw bytes makes it import a CryptoKey on every call,
  // which was a fifth of the CPU of GET /v1/me on Node.
  private readonly key: Promise<CryptoKey>;

  /**
   * @param secret HMAC key material.
   * @param ttlS token lifetime in seconds.
   * @param userExists whether a subject's user row still exists (a cached check: it runs
   *   on every verification). @default every subject exists
   */
  constructor(
    secret: string,
    private readonly ttlS: number,
    private readonly userExists: (userId: string) => boolean | Promise<boolean> = () => true,
  ) {
    this.key = importKey(secret);
  }

  /** Sign a token whose subject is the user id. */
  async issue(userId: string): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(ISSUER)
      .setAudience(ACCESS_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.ttlS}s`)
      .sign(await this.key);
  }

  /**
   * Tokens verified before, by their exact text: a mobile client sends the same token for
   * hours, and jose's Web Crypto HMAC goes through a thread-pool job on Node (a sixth of
   * the CPU of GET /v1/me). The same text with the same key verifies the same way, so a
   * hit only re-checks expiry. Bounded; the oldest entry goes first.
   */
  private readonly verified = new Map<string, AccessClaims>();
  private static readonly CACHE_MAX = 10_000;

  /**
   * Verify a token and return its user id; throws AppError 401 otherwise.
   * @param remember keep it in the verified cache (HTTP requests; a WebSocket upgrade
   *   verifies once per connection, so caching it would only cost memory).
   */
  async verify(token: string, remember = true): Promise<string> {
    return (await this.claims(token, remember)).userId;
  }

  /** Verify a token (as `verify`) and return what it says. */
  async claims(token: string, remember = true): Promise<AccessClaims> {
    const hit = this.verified.get(token);
    let claims: AccessClaims;
    if (hit) {
      if (hit.exp * 1000 <= Date.now()) {
        this.verified.delete(token);
        throw new AppError('token_expired', 'token expired');
      }
      claims = hit;
    } else {
      claims = await this.verifyFresh(token, remember);
    }
    const exists = this.userExists(claims.userId);
    if (exists === true || (exists !== false && (await exists))) return claims;
    this.verified.delete(token);
    throw new AppError('invalid_token', "the token's user no longer exists");
  }

  private async verifyFresh(token: string, remember: boolean): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, await this.key, { algorithms: ['HS256'], issuer: ISSUER, audience: ACCESS_AUDIENCE });
      if (payload.aud !== ACCESS_AUDIENCE) throw new AppError('invalid_token', 'not an access token');
      if (typeof payload.sub !== 'string' || payload.sub === '') throw new AppError('invalid_token', 'token has no subject');
      if (typeof payload.exp !== 'number') throw new AppError('invalid_token', 'token has no expiry');
      const sid = typeof payload.sid === 'string' ? payload.sid : undefined;
      const claims: AccessClaims = { userId: payload.sub, exp: payload.exp, iat: payload.iat ?? 0, sid };
      if (!remember) return claims;
      if (this.verified.size >= TokenService.CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, claims);
      return claims;
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof errors.JWTExpired) throw new AppError('token_expired', 'token expired', { cause: err });
      throw new AppError('invalid_token', 'invalid token', { cause: err });
    }
  }
}

/** What a subscription token grants: one topic, or every topic that starts with a prefix. */
export type SubGrant = { topic: string } | { prefix: string };

/**
 * Subscription tokens (docs/protocol.md, "Subscription tokens"): an app route that decides
 * who may read a `members` topic signs one, and the client passes it on `sub` (or
 * `history`), with no admin API call. Claims: `aud: "onebox:sub"`, `sub` (the user id),
 * `topic` or `prefix`, `exp`.
 */
export class SubTokenService {
  private readonly key: Promise<CryptoKey>;

  /** @param secret SUB_TOKEN_SECRET, or the access-token secret. */
  constructor(secret: string) {
    this.key = importKey(secret);
  }

  /** Sign a token granting `userId` the topic (or prefix) for `ttlS` seconds. */
  async issue(userId: string, grant: SubGrant, ttlS: number): Promise<string> {
    return new SignJWT({ ...grant })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(ISSUER)
      .setAudience(SUB_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${ttlS}s`)
      .sign(await this.key);
  }

  /** Null when the token grants `userId` the topic; otherwise the refusal's code. */
  async check(token: string, userId: string, topic: string): Promise<null | 'invalid_subscription_token' | 'subscription_token_expired'> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, await this.key, { algorithms: ['HS256'], audience: SUB_AUDIENCE, requiredClaims: ['exp', 'sub'] }));
    } catch (err) {
      return err instanceof errors.JWTExpired ? 'subscription_token_expired' : 'invalid_subscription_token';
    }
    if (payload.aud !== SUB_AUDIENCE || payload.sub !== userId) return 'invalid_subscription_token';
    const { topic: granted, prefix } = payload;
    if (typeof granted === 'string' ? granted === topic : typeof prefix === 'string' && prefix !== '' && topic.startsWith(prefix)) return null;
    return 'invalid_subscription_token';
  }
}

/** Token from `Authorization: Bearer …`, or from `?token=` when allowed (WebSocket upgrades). */
export function extractToken(authorization: string | null | undefined, url?: URL): string | undefined {
  if (authorization) {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization);
    return m?.[1];
  }
  return url?.searchParams.get('token') ?? undefined;
}

/**
 * The gateway's `authenticateToken`: an access token sent on a WebSocket (the `auth` op),
 * or an upgrade's, verified without the HTTP cache (a connection verifies once).
 */
export function tokenAuthenticator(tokens: TokenService): (token: string) => Promise<Authentication> {
  return async (token) => {
    try {
      const { userId, exp, iat, sid } = await tokens.claims(token, false);
      return { ok: true, userId, exp, iat, ...(sid !== undefined && { sid }) };
    } catch (err) {
      if (err instanceof AppError && (err.code === 'token_expired' || err.code === 'invalid_token' || err.code === 'session_revoked')) {
        return { ok: false, code: err.code, message: err.message };
      }
      // The user-existence check could not reach the store.
      return { ok: false, code: 'store_unavailable', message: 'cannot check the token now' };
    }
  };
}

/**
 * The gateway's `authenticate`: the token of a WebSocket upgrade (header, or `?token=` as
 * browsers cannot set headers), checked as `tokenAuthenticator` checks it.
 */
export function upgradeAuthenticator(tokens: TokenService): (req: { url: string; authorization: string | null | undefined }) => Promise<Authentication> {
  const check = tokenAuthenticator(tokens);
  return async (req) => {
    const token = extractToken(req.authorization, new URL(req.url, 'http://localhost'));
    if (!token) return { ok: false, code: 'unauthorized', message: 'missing token' };
    return check(token);
  };
}
