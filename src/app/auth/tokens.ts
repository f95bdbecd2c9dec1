/**
 * Access tokens: HS256 JWTs via jose. Verification pins the algorithm, so `alg: none` and
 * any asymmetric-key confusion are refused, and checks issuer and expiry.
 */
import { SignJWT, errors, jwtVerify } from 'jose';
import { AppError } from '../errors.js';

const ISSUER = 'onebox';

export class TokenService {
  private readonly key: Uint8Array;

  /** @param secret HMAC key material. @param ttlS token lifetime in seconds. */
  constructor(secret: string, private readonly ttlS: number) {
    this.key = new TextEncoder().encode(secret);
  }

  /** Sign a token whose subject is the user id. */
  issue(userId: string): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(`${this.ttlS}s`)
      .sign(this.key);
  }

  /** Verify a token and return its user id; throws AppError 401 otherwise. */
  async verify(token: string): Promise<string> {
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], issuer: ISSUER });
      if (typeof payload.sub !== 'string' || payload.sub === '') throw new AppError('invalid_token', 'token has no subject');
      return payload.sub;
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof errors.JWTExpired) throw new AppError('token_expired', 'token expired', { cause: err });
      throw new AppError('invalid_token', 'invalid token', { cause: err });
    }
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
