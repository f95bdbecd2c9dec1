/**
 * Sign in with Apple and Google: the provider's ID token (an RS256 JWT) verified with jose
 * against the provider's published keys. The key set is fetched on first use, kept for ten
 * minutes, and fetched again at once when a token names a key it does not hold (a rotation),
 * at most once per `cooldownMs` so that forged `kid`s cannot make us hammer the provider.
 *
 * Checked: the signature, with the algorithm pinned to RS256 (both providers sign with it;
 * `alg: none`, HS256 and every other algorithm are refused before a key is looked up); the
 * issuer (Google uses both `https://accounts.google.com` and `accounts.google.com`); the
 * audience (one of the configured client ids); expiry and `iat` (30 s of clock skew); and the
 * nonce. The app sends the raw nonce it generated; Apple's token carries its SHA-256 (hex),
 * because the app hands Apple the hash; Google's carries the nonce itself. A token that
 * carries a nonce the request does not prove, or a request whose nonce the token lacks, is
 * refused: a token lifted from another sign-in cannot be replayed here without its nonce.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { AppError } from '../../errors.js';

export type Provider = 'apple' | 'google';

/** What a verified ID token says about its user. */
export interface IdClaims {
  provider: Provider;
  /** The provider's stable user id (`sub`). */
  subject: string;
  /** The audience the token was issued for (one of the configured client ids). */
  clientId: string;
  email: string | null;
  /** Whether the provider vouches for `email`. */
  emailVerified: boolean;
  /** Google's `name` claim (Apple sends the name to the app only, never in the token). */
  name: string | null;
}

/** The fixed facts of a provider; production always uses these. */
export const PROVIDERS = {
  apple: {
    issuers: ['https://appleid.apple.com'],
    jwksUrl: 'https://appleid.apple.com/auth/keys',
    nonce: 'sha256',
  },
  google: {
    issuers: ['https://accounts.google.com', 'accounts.google.com'],
    jwksUrl: 'https://www.googleapis.com/oauth2/v3/certs',
    nonce: 'plain',
  },
} as const satisfies Record<Provider, { issuers: readonly string[]; jwksUrl: string; nonce: 'sha256' | 'plain' }>;

const ALGORITHMS = ['RS256'];
const CLOCK_TOLERANCE_S = 30;

export interface IdTokenVerifierOptions {
  /** Accepted `aud` values. */
  clientIds: readonly string[];
  /** Deadline of a key-set fetch, in ms. */
  timeoutMs: number;
  /** Where the key set is fetched; only tests set it (TEST_*_JWKS_URL). @default the provider's */
  jwksUrl?: string;
  /** After a fetch, how long an unknown `kid` is refused without fetching again. @default 30000 ms */
  cooldownMs?: number;
}

const sha256Hex = (s: string) => createHash('sha256').update(s).digest('hex');

export class IdTokenVerifier {
  private readonly keys: ReturnType<typeof createRemoteJWKSet>;
  private readonly issuers: string[];

  constructor(
    readonly provider: Provider,
    private readonly o: IdTokenVerifierOptions,
  ) {
    const p = PROVIDERS[provider];
    this.issuers = [...p.issuers];
    this.keys = createRemoteJWKSet(new URL(o.jwksUrl ?? p.jwksUrl), { timeoutDuration: o.timeoutMs, cooldownDuration: o.cooldownMs ?? 30_000 });
  }

  /**
   * Verify `token`, bound to `nonce` (the raw value the app generated) when either carries
   * one. Throws AppError 401 `invalid_id_token`, or 502 `provider_unavailable` when the
   * provider's keys could not be fetched.
   */
  async verify(token: string, nonce: string | undefined): Promise<IdClaims> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        algorithms: ALGORITHMS,
        issuer: this.issuers,
        audience: [...this.o.clientIds],
        requiredClaims: ['sub', 'exp', 'iat'],
        clockTolerance: CLOCK_TOLERANCE_S,
      }));
    } catch (err) {
      throw this.failure(err);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw invalid('the token has no subject');
    if (payload.iat! > Date.now() / 1000 + CLOCK_TOLERANCE_S) throw invalid('the token was issued in the future');
    const claimed = payload.nonce;
    if (claimed !== undefined || nonce !== undefined) {
      const expected = nonce === undefined ? undefined : PROVIDERS[this.provider].nonce === 'sha256' ? sha256Hex(nonce) : nonce;
      if (typeof claimed !== 'string' || claimed !== expected) throw invalid('the nonce does not match');
    }
    const aud = Array.isArray(payload.aud) ? payload.aud.find((a) => this.o.clientIds.includes(a)) : payload.aud;
    const email = typeof payload.email === 'string' && payload.email !== '' ? payload.email.trim().toLowerCase() : null;
    return {
      provider: this.provider,
      subject: payload.sub,
      clientId: aud!,
      email,
      // Apple sends "true"/"false" strings in older tokens, booleans in newer ones.
      emailVerified: email !== null && (payload.email_verified === true || payload.email_verified === 'true'),
      name: typeof payload.name === 'string' && payload.name.trim() !== '' ? payload.name.trim().slice(0, 100) : null,
    };
  }

  private failure(err: unknown): AppError {
    // Everything jose says about the token is the token's fault; a failed or malformed
    // fetch of the key set (timeout, refused, not 200, not a key set) is the provider's.
    if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError) || err.code === 'ERR_JOSE_GENERIC') {
      return new AppError('provider_unavailable', `could not fetch the ${this.provider} signing keys`, { cause: err });
    }
    if (err instanceof errors.JWTExpired) return invalid('the token expired', err);
    return invalid('the token did not verify', err);
  }
}

const invalid = (message: string, cause?: unknown) => new AppError('invalid_id_token', message, { cause });
