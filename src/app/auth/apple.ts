/**
 * The two calls of Apple's Sign in with Apple REST API this server makes: exchanging the
 * app's authorization code for a refresh token at sign-in, and revoking that token when the
 * account is deleted (App Store Review Guideline 5.1.1(v)). Both authenticate with a client
 * secret: an ES256 JWT signed with the team's Sign in with Apple key (`iss` team id, `sub`
 * the client id, `aud` https://appleid.apple.com), made once per client id and renewed well
 * inside the hour it is valid for. Each call has a deadline.
 */
import { readFileSync } from 'node:fs';
import { decodeJwt, importPKCS8, SignJWT } from 'jose';
import { AppError } from '../../errors.js';
import { SingleFlight } from '../../lib/single-flight.js';

/** Apple's fixed endpoints; production always uses these. */
export const APPLE_ENDPOINTS = {
  token: 'https://appleid.apple.com/auth/token',
  revoke: 'https://appleid.apple.com/auth/revoke',
} as const;

const AUDIENCE = 'https://appleid.apple.com';
const SECRET_TTL_S = 3600;

export interface AppleClientOptions {
  key: { file: string; id: string; teamId: string };
  /** Deadline of one call, in ms. */
  timeoutMs: number;
  /** Only tests set these (TEST_APPLE_TOKEN_URL, TEST_APPLE_REVOKE_URL). @default Apple's */
  tokenUrl?: string;
  revokeUrl?: string;
}

export class AppleClient {
  private readonly pem: string;
  private readonly secrets = new Map<string, SingleFlight<string>>();

  /** Reads the key file now, so that a missing one stops the boot. */
  constructor(private readonly o: AppleClientOptions) {
    this.pem = readFileSync(o.key.file, 'utf8');
  }

  private secret(clientId: string): Promise<string> {
    let s = this.secrets.get(clientId);
    if (!s) {
      s = new SingleFlight(async () => {
        const key = await importPKCS8(this.pem, 'ES256');
        const iat = Math.floor(Date.now() / 1000);
        const jwt = await new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid: this.o.key.id })
          .setIssuer(this.o.key.teamId)
          .setSubject(clientId)
          .setAudience(AUDIENCE)
          .setIssuedAt(iat)
          .setExpirationTime(iat + SECRET_TTL_S)
          .sign(key);
        return { value: jwt, expiresAt: (iat + SECRET_TTL_S) * 1000 };
      }, 10 * 60_000);
      this.secrets.set(clientId, s);
    }
    return s.get();
  }

  private async post(url: string, form: Record<string, string>): Promise<Response> {
    try {
      return await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(form).toString(),
        redirect: 'error',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (err) {
      throw new AppError('provider_unavailable', 'Apple did not answer', { cause: err });
    }
  }

  /**
   * Exchange an authorization code for the user's refresh token; the code must belong to
   * `subject` (the ID token's). 401 `invalid_authorization_code` when Apple refuses the code
   * (used, expired, another app's), 502 `provider_unavailable` when Apple fails.
   */
  async exchange(code: string, clientId: string, subject: string): Promise<string> {
    const res = await this.post(this.o.tokenUrl ?? APPLE_ENDPOINTS.token, {
      client_id: clientId,
      client_secret: await this.secret(clientId),
      code,
      grant_type: 'authorization_code',
    });
    const body = (await res.json().catch(() => null)) as { refresh_token?: unknown; id_token?: unknown; error?: unknown } | null;
    if (res.status === 400 && body?.error === 'invalid_grant') throw new AppError('invalid_authorization_code', 'Apple refused the authorization code');
    if (!res.ok || typeof body?.refresh_token !== 'string' || typeof body.id_token !== 'string') {
      throw new AppError('provider_unavailable', `Apple's token endpoint answered ${res.status}`);
    }
    // The answer comes straight from Apple over TLS; its ID token only has to name the same user.
    let sub: unknown;
    try {
      sub = decodeJwt(body.id_token).sub;
    } catch (err) {
      throw new AppError('provider_unavailable', "Apple's token endpoint answered an unreadable ID token", { cause: err });
    }
    if (sub !== subject) throw new AppError('invalid_authorization_code', 'the authorization code belongs to another user');
    return body.refresh_token;
  }

  /** Revoke a refresh token (Apple answers 200 for a token already revoked); throws AppError 502 on failure. */
  async revoke(refreshToken: string, clientId: string): Promise<void> {
    const res = await this.post(this.o.revokeUrl ?? APPLE_ENDPOINTS.revoke, {
      client_id: clientId,
      client_secret: await this.secret(clientId),
      token: refreshToken,
      token_type_hint: 'refresh_token',
    });
    await res.body?.cancel();
    if (!res.ok) throw new AppError('provider_unavailable', `Apple's revoke endpoint answered ${res.status}`);
  }
}
