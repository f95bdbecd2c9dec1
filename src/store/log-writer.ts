/**
 * Group commit for the log's hot path. `write()` queues one message and resolves with its
 * offset once the transaction that carries it has committed. One transaction is in flight
 * per writer: what is queued meanwhile (up to `maxBatch`) goes into the next one, so under
 * load a transaction carries many publishes and at rest a publish waits for one commit.
 * There is no timer per item: an idle writer starts a flush on the next turn of the event
 * loop (setImmediate), so the messages read from sockets in one turn share a transaction.
 *
 * A failed transaction wrote nothing, so each of its items is then retried alone, in order:
 * one bad item fails only its own promise and the others keep their order of offsets.
 */
import type { LogItem, MessageLog } from './message-log.js';

export interface LogWriterOptions {
  /** Most items per transaction. @default 1000 */
  maxBatch?: number;
}

interface Pending {
  item: LogItem;
  resolve(offset: number): void;
  reject(err: unknown): void;
}

export class LogWriter {
  private queue: Pending[] = [];
  private scheduled: ReturnType<typeof setImmediate> | null = null;
  private flushing: Promise<void> | null = null;
  private readonly maxBatch: number;
  /** Transactions committed, for metrics. */
  flushes = 0;
  /** Items whose transaction failed, alone or in their batch, for metrics. */
  failures = 0;

  constructor(
    private readonly log: MessageLog,
    opts: LogWriterOptions = {},
  ) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 1000);
  }

  /** Items waiting for a transaction (not counting the one in flight). */
  get queued(): number {
    return this.queue.length;
  }

  /** Queue one message; resolves with its offset once committed. */
  write(item: LogItem): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.flushing && !this.scheduled) this.scheduled = setImmediate(() => this.start());
    });
  }

  /** Wait until everything queued so far is committed or failed. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.scheduled) {
        clearImmediate(this.scheduled);
        this.start();
      }
      if (!this.flushing) return;
      await this.flushing;
    }
  }

  private start(): void {
    this.scheduled = null;
    if (this.flushing) return;
    this.flushing = this.run().finally(() => {
      this.flushing = null;
      // Written after run() saw an empty queue but before this ran: nobody else will start it.
      if (this.queue.length > 0 && !this.scheduled) this.scheduled = setImmediate(() => this.start());
    });
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const offsets = await this.log.append(batch.map((p) => p.item));
        this.flushes++;
        batch.forEach((p, i) => p.resolve(offsets[i]!));
      } catch (err) {
        if (batch.length === 1) {
          this.failures++;
          batch[0]!.reject(err);
          continue;
        }
        for (const p of batch) {
          try {
            const [offset] = await this.log.append([p.item]);
            this.flushes++;
            p.resolve(offset!);
          } catch (e) {
            this.failures++;
            p.reject(e);
          }
        }
      }
    }
  }
}
