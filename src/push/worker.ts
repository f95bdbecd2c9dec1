/**
 * The push outbox worker: one timer per process claims due rows (with a lease), sends them
 * through the platform's provider, and records the outcome. Retries back off exponentially
 * with full jitter; dead tokens remove the device; after `maxAttempts` a row is failed.
 * `kick()` runs a pass at once, so a notification accepted here goes out without waiting
 * for the next poll.
 */
import type { Logger } from '../ops/logger.js';
import type { DeviceStore } from '../store/devices.js';
import type { ClaimedPush, OutboxStore } from '../store/outbox.js';
import type { PushProvider, PushResult } from './types.js';

export interface PushWorkerOptions {
  /** @default 1000 ms */
  pollMs: number;
  /** @default 30000 ms */
  leaseMs: number;
  /** @default 10 */
  maxAttempts: number;
  /** First retry delay; doubles each attempt, capped at one hour. @default 1000 ms */
  backoffBaseMs: number;
  /** Rows per claim. @default 50 */
  batch: number;
}

export class PushWorkerStats {
  sent = 0;
  retried = 0;
  dead = 0;
  failed = 0;
}

export class PushWorker {
  readonly stats = new PushWorkerStats();
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly outbox: OutboxStore,
    private readonly devices: DeviceStore,
    private readonly providers: Partial<Record<'ios' | 'android' | 'web', PushProvider>>,
    private readonly o: PushWorkerOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.kick(), this.o.pollMs);
    this.timer.unref?.();
    this.kick();
  }

  /** Run a pass now (or right after the current one). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.log.error({ err }, 'push pass failed'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.again = false;
    await this.running;
    for (const p of Object.values(this.providers)) p?.close?.();
  }

  private async pass(): Promise<void> {
    for (;;) {
      const rows = await this.outbox.claim(Date.now(), this.o.batch, this.o.leaseMs);
      if (rows.length === 0) return;
      await Promise.all(rows.map((r) => this.deliver(r)));
      if (rows.length < this.o.batch || !this.timer) return;
    }
  }

  private async deliver(row: ClaimedPush): Promise<void> {
    if (!row.device) {
      await this.outbox.finish(row.id, 'dead', 'device removed');
      return;
    }
    const provider = this.providers[row.device.platform];
    let result: PushResult;
    if (!provider) result = { kind: 'failed', reason: `no ${row.device.platform} provider configured` };
    else {
      try {
        result = await provider.send(row.device, row.payload);
      } catch (err) {
        result = { kind: 'retry', reason: (err as Error).message };
      }
    }
    const attempts = row.attempts + 1;
    switch (result.kind) {
      case 'sent':
        this.stats.sent++;
        await this.outbox.finish(row.id, 'sent', null);
        return;
      case 'dead':
        this.stats.dead++;
        this.log.info({ device: row.deviceId, reason: result.reason }, 'push token dead: device removed');
        await this.devices.removeDead(row.deviceId);
        await this.outbox.finish(row.id, 'dead', result.reason);
        return;
      case 'failed':
        this.stats.failed++;
        this.log.warn({ outbox: row.id, reason: result.reason }, 'push failed');
        await this.outbox.finish(row.id, 'failed', result.reason);
        return;
      case 'retry': {
        if (attempts >= this.o.maxAttempts) {
          this.stats.failed++;
          await this.outbox.finish(row.id, 'failed', `gave up after ${attempts} attempts: ${result.reason}`);
          return;
        }
        this.stats.retried++;
        const cap = Math.min(3_600_000, this.o.backoffBaseMs * 2 ** (attempts - 1));
        const delay = Math.round(Math.max(result.afterMs ?? 0, Math.random() * cap));
        await this.outbox.retry(row.id, attempts, Date.now() + delay, result.reason);
        return;
      }
    }
  }
}
