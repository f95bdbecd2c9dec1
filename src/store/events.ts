/**
 * App analytics events. Writes from concurrent requests are grouped: each request queues its
 * batch and awaits the commit of the transaction that carries it, so ingestion costs one
 * transaction per flush instead of one per request. A failed transaction fails every
 * request in it and writes none of their rows, except a foreign-key failure (a user deleted
 * meanwhile): then each request is retried alone, so only the vanished user's fails.
 */
import type { Db } from './db.js';
import { isForeignKeyViolation } from './db-errors.js';
import type { EventsTable } from './schema.js';

const ROWS_PER_INSERT = 100;
const DAY_MS = 86_400_000;

/** UTC day number of an epoch-ms timestamp. */
export const dayOf = (ms: number) => Math.floor(ms / DAY_MS);

interface Pending {
  rows: EventsTable[];
  resolve(): void;
  reject(err: unknown): void;
}

export class EventWriter {
  private queue: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** Transactions committed, for metrics. */
  flushes = 0;

  /**
   * @param maxRows rows per transaction. @default 5000
   * @param lingerMs how long a batch waits for company. @default 2 ms
   */
  constructor(
    private readonly db: Db,
    private readonly maxRows = 5000,
    private readonly lingerMs = 2,
  ) {}

  /** Queue rows; resolves once they are committed. */
  write(rows: EventsTable[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.flushing = this.flushing.then(() => this.flush());
      }, this.lingerMs);
    });
  }

  /** Wait for everything queued so far to be written. */
  async drain(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      this.flushing = this.flushing.then(() => this.flush());
    }
    await this.flushing;
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch: Pending[] = [];
      let n = 0;
      while (this.queue.length > 0 && (batch.length === 0 || n + this.queue[0]!.rows.length <= this.maxRows)) {
        const p = this.queue.shift()!;
        batch.push(p);
        n += p.rows.length;
      }
      try {
        await this.commit(batch.flatMap((p) => p.rows));
        for (const p of batch) p.resolve();
      } catch (err) {
        if (batch.length > 1 && isForeignKeyViolation(err)) {
          // One request's user is gone (deleted since its token was checked); the others
          // must not fail with it. Rare, so each goes alone and meets its own fate.
          for (const p of batch) await this.commit(p.rows).then(p.resolve, p.reject);
        } else {
          for (const p of batch) p.reject(err);
        }
      }
    }
  }

  private async commit(rows: EventsTable[]): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
        await tx.insertInto('events').values(rows.slice(i, i + ROWS_PER_INSERT)).execute();
      }
      const counts = new Map<string, { user_id: string; type: string; day: number; n: number }>();
      for (const r of rows) {
        const day = dayOf(r.ts);
        const key = `${r.user_id}\u0000${r.type}\u0000${day}`;
        const c = counts.get(key);
        if (c) c.n++;
        else counts.set(key, { user_id: r.user_id, type: r.type, day, n: 1 });
      }
      const all = [...counts.values()];
      for (let i = 0; i < all.length; i += ROWS_PER_INSERT) {
        await tx
          .insertInto('event_counts')
          .values(all.slice(i, i + ROWS_PER_INSERT))
          .onConflict((oc) => oc.columns(['user_id', 'day', 'type']).doUpdateSet((eb) => ({ n: eb('event_counts.n', '+', eb.ref('excluded.n')) })))
          .execute();
      }
    });
    this.flushes++;
  }
}

export interface EventCounts {
  [type: string]: { last7d: number; last30d: number };
}

/**
 * Counts per event type over the last 7 and 30 UTC days (today included), read from the
 * daily rollup. Honours the abort signal before and after the query.
 */
export async function countEvents(db: Db, userId: string, now: number, signal?: AbortSignal): Promise<EventCounts> {
  signal?.throwIfAborted();
  const today = dayOf(now);
  const rows = await db
    .selectFrom('event_counts')
    .select(['type', 'day', 'n'])
    .where('user_id', '=', userId)
    .where('day', '>', today - 30)
    .where('day', '<=', today + 1) // device clocks run up to 5 min ahead
    .execute();
  signal?.throwIfAborted();
  const out: EventCounts = {};
  for (const r of rows) {
    const c = (out[r.type] ??= { last7d: 0, last30d: 0 });
    const n = Number(r.n);
    c.last30d += n;
    if (r.day > today - 7) c.last7d += n;
  }
  return out;
}
