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

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  /** False when mail goes nowhere (production without SMTP_URL): jobs are then skipped whole. */
  readonly delivers: boolean;
  /** Send one message; rejects when the server refuses it or a deadline passes. */
  send(m: MailMessage): Promise<void>;
  close(): void;
}

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

/** A mail job: builds (and may skip) its message; runs after the HTTP answer. */
export type MailJob = () => Promise<MailMessage | null>;

export class Outgoing {
  private running = 0;
  private readonly queue: Array<{ kind: string; job: MailJob }> = [];
  private readonly idle = new Set<() => void>();
  /** Jobs dropped because the queue was full, and sends that failed (for metrics and tests). */
  readonly stats = { dropped: 0, failed: 0, sent: 0 };

  /**
   * @param concurrency jobs running at once. @default 4
   * @param maxQueued jobs waiting beyond those; more are dropped with a warning. @default 1000
   */
  constructor(
    private readonly mailer: Mailer,
    private readonly log: Logger,
    private readonly concurrency = 4,
    private readonly maxQueued = 1000,
  ) {}

  /** Run `job` soon; `kind` names it in logs (never the address or the message). */
  enqueue(kind: string, job: MailJob): void {
    if (!this.mailer.delivers) return;
    if (this.queue.length >= this.maxQueued) {
      this.stats.dropped++;
      this.log.warn({ kind }, 'mail queue full: mail dropped');
      return;
    }
    this.queue.push({ kind, job });
    this.pump();
  }

  /** Settles once every accepted job has finished. */
  drain(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const { kind, job } = this.queue.shift()!;
      this.running++;
      void this.run(kind, job).finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.queue.length === 0) {
          for (const resolve of this.idle) resolve();
          this.idle.clear();
        }
      });
    }
  }

  private async run(kind: string, job: MailJob): Promise<void> {
    try {
      const m = await job();
      if (!m) return;
      await this.mailer.send(m);
      this.stats.sent++;
    } catch (err) {
      this.stats.failed++;
      // The error names the server's answer, never the message: its links are credentials.
      this.log.warn({ err, kind }, 'mail not sent');
    }
  }
}
