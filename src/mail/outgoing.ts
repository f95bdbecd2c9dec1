/**
 * Mail jobs run after the HTTP answer has gone (see index.ts): a few at a time, a bounded
 * queue behind them, errors logged by kind only, and `drain` for shutdown.
 */
import type { Logger } from '../observability/logger.js';
import type { MailMessage, Mailer } from './mailer.js';

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
