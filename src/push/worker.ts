/**
 * The push outbox worker: one timer per process claims due rows (with a lease), sends them
 * through the platform's provider, and records the outcome. Retries back off exponentially
 * with full jitter; dead tokens remove the device; after `maxAttempts` a row is failed.
 * `kick()` runs a pass at once, so a notification accepted here goes out without waiting
 * for the next poll.
 *
 * Sends run in a pool of `concurrency` slots, each bounded by `sendTimeoutMs`: a pass claims
 * only as many rows as there are free slots (a claimed row never waits in memory while its
 * lease runs out) and returns without waiting for the sends; each finished send frees its
 * slot and, while more rows may be due, claims again. One endpoint that never answers holds
 * one slot until its deadline, then is retried like any other failure; every other row
 * keeps flowing through the remaining slots.
 */
import type { Logger } from '../observability/logger.js';
import type { DeviceRow, DeviceStore } from '../store/devices.js';
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
  /** Most rows per claim. @default 50 */
  batch: number;
  /** Deadline of one send; past it the send is aborted and retried. @default 5000 ms */
  sendTimeoutMs: number;
  /** Sends in flight at once in this process. @default 16 */
  concurrency: number;
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
  private stopped = false;
  /** The last claim filled what it asked for: more rows may be due. */
  private more = false;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly outbox: OutboxStore,
    private readonly devices: DeviceStore,
    private readonly providers: Partial<Record<'ios' | 'android' | 'web', PushProvider>>,
    private readonly o: PushWorkerOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer ??= setInterval(() => this.kick(), this.o.pollMs);
    this.timer.unref?.();
    this.kick();
  }

  /** Sends in flight now. */
  get busy(): number {
    return this.inflight.size;
  }

  /** Run a pass now (or right after the current one). */
  kick(): void {
    if (this.stopped) return;
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

  /** Stop claiming; sends in flight finish (each within its deadline) and are recorded. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.again = false;
    this.stopped = true;
    await this.running;
    await Promise.all(this.inflight);
    for (const p of Object.values(this.providers)) p?.close?.();
  }

  /** Claim rows into the free slots and start their sends; does not wait for them. */
  private async pass(): Promise<void> {
    while (!this.stopped) {
      const want = Math.min(this.o.batch, this.o.concurrency - this.inflight.size);
      if (want <= 0) return;
      const rows = await this.outbox.claim(Date.now(), want, this.o.leaseMs);
      this.more = rows.length === want;
      for (const row of rows) this.launch(row);
      if (!this.more) return;
    }
  }

  private launch(row: ClaimedPush): void {
    const done: Promise<void> = this.deliver(row)
      .catch((err: unknown) => this.log.error({ err, outbox: row.id }, 'push delivery failed'))
      .finally(() => {
        this.inflight.delete(done);
        if (this.more) this.kick();
      });
    this.inflight.add(done);
  }

  /** The provider's answer, or a retry once `sendTimeoutMs` has passed (the send is aborted). */
  private async sendWithDeadline(provider: PushProvider, row: ClaimedPush & { device: DeviceRow }): Promise<PushResult> {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<PushResult>((resolve) => {
      timer = setTimeout(() => {
        const reason = `timed out after ${this.o.sendTimeoutMs} ms`;
        ac.abort(new Error(reason));
        resolve({ kind: 'retry', reason });
      }, this.o.sendTimeoutMs);
    });
    // Raced, not just signalled: a provider that ignores the signal still frees its slot.
    const sent = provider
      .send(row.device, { ...row.payload, id: row.notificationId, topic: row.topic, offset: row.offset }, ac.signal)
      .catch((err: unknown): PushResult => ({ kind: 'retry', reason: (err as Error).message }));
    try {
      return await Promise.race([sent, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async deliver(row: ClaimedPush): Promise<void> {
    if (!row.device) {
      await this.outbox.finish(row.id, 'dead', 'device removed');
      return;
    }
    const provider = this.providers[row.device.platform];
    const result: PushResult = provider
      ? await this.sendWithDeadline(provider, { ...row, device: row.device })
      : { kind: 'failed', reason: `no ${row.device.platform} provider configured` };
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
