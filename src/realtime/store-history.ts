/**
 * The realtime core's `HistoryLog` over the store: appends go through the group-commit
 * writer (one transaction for everything published in one turn of the loop), keyed appends
 * through one transaction each that claims the key and commits the message together, and a
 * background pass trims each topic to its namespace's history bounds and forgets idempotency
 * keys older than a day.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../store/db.js';
import { IdempotencyStore, KEY_TTL_MS } from '../store/idempotency.js';
import { LogWriter } from '../store/log-writer.js';
import { MessageLog } from '../store/message-log.js';
import type { Channels } from './channels.js';
import type { HistoryLog } from './delivery.js';

/**
 * The budget of one trim call (topics visited and messages deleted). A retention run
 * (every RETENTION_INTERVAL_MS) repeats calls, yielding between them, until one stays under
 * its budget, so retention keeps up with any publish rate the log can take.
 */
const TRIM_BUDGET = 2000;
/** Trim calls of one run at most, so a backlog is worked off over several runs. */
const TRIM_CALLS_PER_RUN = 50;
/** Idempotency keys are purged once a minute. */
const PURGE_EVERY_MS = 60_000;

/** The hash an idempotency key is bound to: the topic and the data. */
export const contentHash = (...parts: string[]) => createHash('sha256').update(parts.join('\n')).digest('base64url');

export class StoreHistory implements HistoryLog {
  readonly log: MessageLog;
  readonly writer: LogWriter;
  readonly keys: IdempotencyStore;
  private timer: ReturnType<typeof setInterval> | null = null;
  private running = false;
  private purgedAt = 0;

  constructor(
    private readonly db: Db,
    private readonly channels: Channels,
    private readonly onError: (err: unknown) => void,
    /** Period of the retention run (RETENTION_INTERVAL_MS). @default 1000 ms */
    private readonly retentionIntervalMs = 1000,
  ) {
    this.log = new MessageLog(db);
    this.writer = new LogWriter(this.log);
    this.keys = new IdempotencyStore(db);
  }

  epoch(): Promise<string> {
    return this.log.epoch();
  }

  append(m: { topic: string; data: string; from: string | null; ts: number }): Promise<number> {
    return this.writer.write(m);
  }

  appendOnce(scope: string, key: string, m: { topic: string; data: string; from: string | null; ts: number }) {
    const hash = contentHash(m.topic, m.data);
    return this.db.transaction().execute(async (tx) => {
      const claim = await this.keys.begin(tx, scope, key, hash);
      if (claim.state !== 'new') {
        if (claim.state === 'pending' || claim.hash !== hash) return 'conflict' as const;
        return { offset: (JSON.parse(claim.response) as { offset: number }).offset, fresh: false };
      }
      const [offset] = await this.log.appendIn(tx, [m]);
      await this.keys.complete(tx, scope, key, JSON.stringify({ offset }));
      return { offset: offset!, fresh: true };
    });
  }

  read(topic: string, after: number, limit: number, maxBytes: number) {
    return this.log.read(topic, after, limit, maxBytes);
  }

  head(topic: string): Promise<number> {
    return this.log.head(topic);
  }

  /** Start the background retention pass. */
  start(): void {
    this.timer ??= setInterval(() => void this.retain(), this.retentionIntervalMs);
    this.timer.unref();
  }

  /** Stop trimming and commit what is queued. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.writer.drain();
  }

  /** One retention run: bounded calls, so no statement holds the store long. */
  async retain(now = Date.now()): Promise<void> {
    if (this.running) return;
    this.running = true;
    const policy = (topic: string) => {
      // A namespace no longer configured: its topics cannot be read, and a configuration
      // typo must not delete them; they are kept until it is configured again.
      const rules = this.channels.rules(topic);
      if (!rules) return { size: Infinity, ttlMs: Infinity };
      return { size: rules.history.size, ttlMs: rules.history.ttlS * 1000 };
    };
    try {
      for (let i = 0; i < TRIM_CALLS_PER_RUN; i++) {
        if ((await this.log.trim(policy, now, TRIM_BUDGET)) < TRIM_BUDGET) break;
        await new Promise((r) => setImmediate(r));
      }
      if (now - this.purgedAt >= PURGE_EVERY_MS) {
        await this.keys.purge(now - KEY_TTL_MS);
        this.purgedAt = now;
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.running = false;
    }
  }
}
