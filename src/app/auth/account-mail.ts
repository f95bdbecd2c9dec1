/**
 * The mails of the account flows, each queued on `Outgoing` so that it runs after the HTTP
 * answer: what a route answers, and when, never depends on whether an address has an
 * account (the lookup, the token and the send all happen in the job). Tokens are issued
 * here, by the store, and leave the process only inside the message.
 */
import { alreadyRegisteredMail, changeEmailMail, resetPasswordMail, verifyEmailMail, type LinkOptions } from '../../mail/messages.js';
import type { Outgoing } from '../../mail/index.js';
import type { OneTimeTokenStore } from '../../store/one-time-tokens.js';
import type { UserStore } from '../../store/users.js';
import type { Config } from '../../config.js';

export type AccountMailOptions = Pick<Config, 'appUrl' | 'emailVerifyTtlS' | 'passwordResetTtlS'>;

export class AccountMail {
  private readonly links: LinkOptions;

  constructor(
    private readonly users: UserStore,
    private readonly tokens: OneTimeTokenStore,
    private readonly outgoing: Outgoing,
    private readonly opts: AccountMailOptions,
  ) {
    this.links = { appUrl: opts.appUrl };
  }

  /** A verification link to the account's current address (signup, resend). */
  verification(userId: string, email: string): void {
    this.outgoing.enqueue('verify_email', async () => {
      const token = await this.tokens.issue(userId, 'verify_email', email, this.opts.emailVerifyTtlS * 1000);
      return verifyEmailMail(this.links, email, token, this.opts.emailVerifyTtlS);
    });
  }

  /** Resend a verification link when `email` names an unverified account; nothing otherwise. */
  resendVerification(email: string): void {
    this.outgoing.enqueue('verify_email', async () => {
      const user = await this.users.byEmail(email);
      if (!user || Number(user.email_verified) === 1) return null;
      const token = await this.tokens.issue(user.id, 'verify_email', email, this.opts.emailVerifyTtlS * 1000);
      return verifyEmailMail(this.links, email, token, this.opts.emailVerifyTtlS);
    });
  }

  /** A reset link when `email` has an account; nothing otherwise. */
  passwordReset(email: string): void {
    this.outgoing.enqueue('reset_password', async () => {
      const user = await this.users.byEmail(email);
      if (!user) return null;
      const token = await this.tokens.issue(user.id, 'reset_password', email, this.opts.passwordResetTtlS * 1000);
      return resetPasswordMail(this.links, email, token, this.opts.passwordResetTtlS);
    });
  }

  /** The link that confirms a change of email, to the new address (its token was issued with the change). */
  emailChange(newEmail: string, token: string): void {
    this.outgoing.enqueue('change_email', async () => changeEmailMail(this.links, newEmail, token, this.opts.emailVerifyTtlS));
  }

  /** "You already have an account", to a taken address (enumeration-safe signup and change of email). */
  alreadyRegistered(email: string): void {
    this.outgoing.enqueue('already_registered', async () => alreadyRegisteredMail(this.links, email));
  }
}
