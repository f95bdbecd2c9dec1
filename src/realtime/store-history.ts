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

/** How often the retention pass runs, and how many topics one pass visits at most. */
const TRIM_EVERY_MS = 30_000;
const TRIM_TOPICS_PER_PASS = 2000;

/** The hash an idempotency key is bound to: the topic and the data. */
export const contentHash = (...parts: string[]) => createHash('sha256').update(parts.join('\n')).digest('base64url');

export class StoreHistory implements HistoryLog {
  readonly log: MessageLog;
  readonly writer: LogWriter;
  readonly keys: IdempotencyStore;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly db: Db,
    private readonly channels: Channels,
    private readonly onError: (err: unknown) => void,
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
    this.timer ??= setInterval(() => void this.retain(), TRIM_EVERY_MS);
    this.timer.unref();
  }

  /** Stop trimming and commit what is queued. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.writer.drain();
  }

  /** One retention pass: bounded, so it never holds the store long. */
  async retain(now = Date.now()): Promise<void> {
    try {
      await this.log.trim((topic) => {
        // A namespace no longer configured: its topics cannot be read, and a configuration
        // typo must not delete them; they are kept until it is configured again.
        const rules = this.channels.rules(topic);
        if (!rules) return { size: Infinity, ttlMs: Infinity };
        return { size: rules.history.size, ttlMs: rules.history.ttlS * 1000 };
      }, now, TRIM_TOPICS_PER_PASS);
      await this.keys.purge(now - KEY_TTL_MS);
    } catch (err) {
      this.onError(err);
    }
  }
}
