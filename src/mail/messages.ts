/**
 * The text of each mail. A link is `<APP_URL>/<page>?token=…` when APP_URL is set (the app's
 * page or universal link posts the token back to the API); the token is also printed as a
 * code to paste, so a mail is usable without APP_URL too.
 */
import type { MailMessage } from './mailer.js';

export interface LinkOptions {
  /** APP_URL without a trailing slash, or undefined. */
  appUrl: string | undefined;
}

const minutes = (ttlS: number) => (ttlS % 3600 === 0 ? `${ttlS / 3600} hour${ttlS === 3600 ? '' : 's'}` : `${Math.round(ttlS / 60)} minutes`);

function action(o: LinkOptions, page: string, token: string): string {
  const code = `code: ${token}`;
  return o.appUrl ? `${o.appUrl}/${page}?token=${token}\n\nOr enter this ${code}` : `Enter this ${code}`;
}

export function verifyEmailMail(o: LinkOptions, to: string, token: string, ttlS: number): MailMessage {
  return {
    to,
    subject: 'Confirm your email address',
    text: `Confirm that this address is yours:\n\n${action(o, 'verify-email', token)}\n\nThis works once, within ${minutes(ttlS)}. If you did not sign up, ignore this mail.\n`,
  };
}

export function changeEmailMail(o: LinkOptions, to: string, token: string, ttlS: number): MailMessage {
  return {
    to,
    subject: 'Confirm your new email address',
    text: `Confirm that your account's email address should become this one:\n\n${action(o, 'verify-email', token)}\n\nThis works once, within ${minutes(ttlS)}. Until then your account keeps its old address. If you did not ask for this, ignore this mail.\n`,
  };
}

export function resetPasswordMail(o: LinkOptions, to: string, token: string, ttlS: number): MailMessage {
  return {
    to,
    subject: 'Reset your password',
    text: `Someone asked to reset the password of the account with this address. To choose a new password:\n\n${action(o, 'reset-password', token)}\n\nThis works once, within ${minutes(ttlS)}, and signs out every device. If it was not you, ignore this mail: your password stays as it is.\n`,
  };
}

/** Sent instead of a verification mail when an enumeration-safe signup meets a taken address. */
export function alreadyRegisteredMail(o: LinkOptions, to: string): MailMessage {
  const reset = o.appUrl ? ` (${o.appUrl}/reset-password)` : '';
  return {
    to,
    subject: 'You already have an account',
    text: `Someone tried to sign up with this address, but you already have an account. Sign in instead, or reset your password${reset} if you forgot it. If it was not you, ignore this mail: nothing changed.\n`,
  };
}
