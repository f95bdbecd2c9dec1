/**
 * Outgoing mail. `Mailer` is the seam; three implementations, chosen once at boot from the
 * configuration (`config.mailMode`): SMTP through nodemailer (smtp-mailer.ts, imported on the
 * first send so an idle server never loads it), the development log (the message, links
 * included, as one info line: there is no SMTP server on a laptop), and off (production
 * without SMTP_URL: nothing is sent, one warning at boot says so).
 *
 * `Outgoing` runs mail jobs after the HTTP answer has gone: whether an account exists must
 * not change how long forgot-password or an enumeration-safe signup takes to answer, so the
 * lookup, the token and the send all happen in the job. Jobs run a few at a time, a bounded
 * queue waits behind them, and `drain` lets shutdown finish what was accepted.
 */
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { Mailer } from './mailer.js';

export type { MailMessage, Mailer } from './mailer.js';
export { Outgoing, type MailJob } from './outgoing.js';

/** The settings mail reads. */
export type MailOptions = Pick<Config, 'mailMode' | 'smtpUrl' | 'mailFrom' | 'smtpTimeoutMs'>;

const DEV_FROM = 'onebox <no-reply@localhost>';

/** The mailer `opts` call for; logs at boot what mail will do. */
export function createMailer(opts: MailOptions, log: Logger): Mailer {
  if (opts.mailMode === 'smtp') return lazySmtp(opts, log);
  if (opts.mailMode === 'log') {
    log.info('SMTP_URL unset (development): mails are logged with their links instead of sent');
    return {
      delivers: true,
      send: async (m) => log.info({ mail: { from: DEV_FROM, ...m } }, 'mail (not sent: SMTP_URL unset)'),
      close: () => undefined,
    };
  }
  log.warn('SMTP_URL unset with JWT_SECRET set: no mail is sent (email verification, password reset, change of email)');
  return { delivers: false, send: async () => undefined, close: () => undefined };
}

function lazySmtp(opts: MailOptions, log: Logger): Mailer {
  let real: Promise<Mailer> | undefined;
  return {
    delivers: true,
    async send(m) {
      real ??= import('./smtp-mailer.js').then((mod) => mod.createSmtpMailer(opts.smtpUrl!, opts.mailFrom!, opts.smtpTimeoutMs));
      await (await real).send(m);
    },
    close() {
      real?.then((r) => r.close()).catch((err: unknown) => log.warn({ err }, 'closing the SMTP transport failed'));
    },
  };
}
