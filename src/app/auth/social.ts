/**
 * Sign in with Apple and Google over the verifiers, Apple's REST client and the identity
 * store: verify the ID token, exchange Apple's authorization code when one comes (its
 * refresh token is what account deletion revokes), then find, link or create the account.
 */
import { AppError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { IdentityStore } from '../../store/identities.js';
import type { UserRow } from '../../store/users.js';
import type { AppleClient } from './apple.js';
import type { IdTokenVerifier, Provider } from './id-tokens.js';

export interface SocialRequest {
  idToken: string;
  /** The raw nonce the app generated for this sign-in. */
  nonce?: string;
  /** Apple: the authorization code of the same sign-in. */
  code?: string;
  /** Apple gives the name to the app only, at the first sign-in: the app passes it on. */
  displayName?: string;
}

export interface SocialSignInOptions {
  /** Absent: that provider is off (APPLE_CLIENT_IDS / GOOGLE_CLIENT_IDS unset). */
  verifiers: Partial<Record<Provider, IdTokenVerifier>>;
  /** Absent: no Apple key, codes are ignored and nothing can be revoked. */
  apple?: AppleClient;
  identities: IdentityStore;
  log: Logger;
  /**
   * REQUIRE_EMAIL_VERIFICATION: an account whose email is not verified is refused (403
   * `email_not_verified`) as login refuses it; it is kept, and a verification mail
   * (`POST /v1/auth/verify/resend`) opens it. @default false
   */
  requireVerifiedEmail?: boolean;
}

export class SocialSignIn {
  private warnedNoKey = false;

  constructor(private readonly o: SocialSignInOptions) {}

  enabled(provider: Provider): boolean {
    return this.o.verifiers[provider] !== undefined;
  }

  /** The account the request opens; throws AppError (401 `invalid_id_token`, 409 `email_taken`, …). */
  async signIn(provider: Provider, r: SocialRequest): Promise<{ user: UserRow; created: boolean }> {
    const verifier = this.o.verifiers[provider];
    if (!verifier) throw new AppError('provider_disabled', `sign-in with ${provider} is not configured`);
    const claims = await verifier.verify(r.idToken, r.nonce);
    let refreshToken: string | undefined;
    if (provider === 'apple' && r.code !== undefined) {
      if (this.o.apple) {
        refreshToken = await this.o.apple.exchange(r.code, claims.clientId, claims.subject);
      } else if (!this.warnedNoKey) {
        this.warnedNoKey = true;
        this.o.log.warn('an Apple authorization code came but APPLE_KEY_FILE/_KEY_ID/_TEAM_ID are unset: codes are ignored, and deleted accounts cannot revoke their Apple tokens');
      }
    }
    const outcome = await this.o.identities.signIn({
      provider,
      subject: claims.subject,
      clientId: claims.clientId,
      email: claims.email,
      emailVerified: claims.emailVerified,
      displayName: r.displayName ?? claims.name,
      refreshToken,
    });
    if (outcome.kind !== 'user' && refreshToken !== undefined) {
      // No account keeps this token: revoke it now rather than leave the app authorised at Apple.
      const apple = this.o.apple!;
      apple.revoke(refreshToken, claims.clientId).catch((err: unknown) => this.o.log.warn({ err }, 'revoking an unused Apple refresh token failed'));
    }
    if (outcome.kind === 'email_taken') {
      throw new AppError('email_taken', 'an account with this email exists and cannot be linked: sign in to it another way');
    }
    if (outcome.kind === 'email_required') {
      throw new AppError('email_required', `${provider} gave no email for this new account: request the email scope`);
    }
    if (this.o.requireVerifiedEmail && Number(outcome.user.email_verified) !== 1) {
      throw new AppError('email_not_verified', `${provider} does not vouch for this email: verify it through the mail (POST /v1/auth/verify/resend), then sign in again`);
    }
    return { user: outcome.user, created: outcome.created };
  }

  /**
   * Revoke the user's Sign in with Apple refresh tokens (account deletion calls this before
   * deleting the rows). A token that cannot be revoked is logged, never thrown: deleting the
   * account matters more. Returns how many were revoked.
   */
  async revokeAppleTokens(userId: string): Promise<number> {
    const tokens = await this.o.identities.appleTokens(userId);
    if (tokens.length === 0) return 0;
    if (!this.o.apple) {
      this.o.log.error({ userId, tokens: tokens.length }, 'cannot revoke Apple tokens: APPLE_KEY_FILE/_KEY_ID/_TEAM_ID are unset');
      return 0;
    }
    let revoked = 0;
    for (const t of tokens) {
      try {
        await this.o.apple.revoke(t.refreshToken, t.clientId);
        revoked++;
      } catch (err) {
        this.o.log.error({ err, userId }, 'revoking an Apple refresh token failed');
      }
    }
    return revoked;
  }
}
