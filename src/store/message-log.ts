/**
 * The per-topic message log of delivery v2. Every message of a topic that keeps history gets
 * an offset: gapless and strictly increasing per topic. A batch takes its offsets by bumping
 * the topic's row in `topic_heads` (one upsert … RETURNING for all its topics, in topic
 * order) and inserts its messages in the same transaction, so offsets and messages commit or
 * vanish together. Concurrent writers are ordered by the store itself: PostgreSQL holds the
 * bumped head row locked until commit (a second writer of that topic waits, then adds to the
 * committed head), SQLite has one writer at a time. The bump is the transaction's first
 * statement on purpose: on SQLite a transaction that reads before it writes cannot wait for
 * the write lock (SQLITE_BUSY_SNAPSHOT), one that writes first waits under busy_timeout.
 *
 * `topic_heads` outlives trimming, so offsets continue after every message was trimmed. Each
 * store has an epoch (a random id written by the migration that created the log); a client's
 * {offset, epoch} is valid as long as the epoch is the same.
 */
import { insertChunks } from './chunks.js';
import type { Db } from './db.js';

/** A message to append. `data` is JSON text; `ts` is server time in epoch ms. */
export interface LogItem {
  topic: string;
  data: string;
  from: string | null;
  ts: number;
}

export interface LogEntry {
  offset: number;
  ts: number;
  data: string;
  from: string | null;
}

export interface LogRead {
  /** Entries with offset > after, ascending. */
  entries: LogEntry[];
  /** The topic's last offset (0: never written). */
  head: number;
  /** The lowest offset still kept; head + 1 when none is. `after < oldest - 1` means a gap. */
  oldest: number;
  /** Further entries exist beyond the last one returned. */
  more: boolean;
}

/** Retention of one topic: at most `size` messages, none older than `ttlMs`. */
export interface RetentionPolicy {
  size: number;
  ttlMs: number;
}

export class MessageLog {
  private epochP: Promise<string> | null = null;
  /** Where the next trim pass resumes (topics in order, then wraps around). */
  private trimCursor = '';

  constructor(private readonly db: Db) {}

  /** The store's epoch; read once. */
  epoch(): Promise<string> {
    this.epochP ??= this.db
      .selectFrom('store_meta')
      .select('value')
      .where('key', '=', 'epoch')
      .executeTakeFirstOrThrow()
      .then((r) => r.value)
      .catch((err: unknown) => {
        this.epochP = null; // a transient failure must not stick
        throw err;
      });
    return this.epochP;
  }

  /** Append a batch in one transaction; returns each item's offset. */
  append(items: LogItem[]): Promise<number[]> {
    if (items.length === 0) return Promise.resolve([]);
    return this.db.transaction().execute((tx) => this.appendIn(tx, items));
  }

  /**
   * Append inside the caller's transaction (notify commits its notification rows with the
   * message). On SQLite, make this or another write the transaction's first statement.
   */
  async appendIn(tx: Db, items: LogItem[]): Promise<number[]> {
    if (items.length === 0) return [];
    const counts = new Map<string, number>();
    for (const it of items) counts.set(it.topic, (counts.get(it.topic) ?? 0) + 1);
    // Topics in one order for every writer: two batches sharing topics lock them alike on
    // PostgreSQL, never each holding one the other waits for.
    const bumps = [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([topic, head]) => ({ topic, head }));
    const next = new Map<string, number>();
    for (const chunk of insertChunks(bumps)) {
      const heads = await tx
        .insertInto('topic_heads')
        .values(chunk)
        .onConflict((oc) => oc.column('topic').doUpdateSet((eb) => ({ head: eb('topic_heads.head', '+', eb.ref('excluded.head')) })))
        .returning(['topic', 'head'])
        .execute();
      for (const h of heads) next.set(h.topic, Number(h.head) - counts.get(h.topic)! + 1);
    }
    const offsets: number[] = [];
    const rows = items.map((it) => {
      const seq = next.get(it.topic)!;
      next.set(it.topic, seq + 1);
      offsets.push(seq);
      return { topic: it.topic, seq, ts: it.ts, data: it.data, from_user: it.from };
    });
    for (const chunk of insertChunks(rows)) await tx.insertInto('messages').values(chunk).execute();
    return offsets;
  }

  /** The topic's last offset; 0 when it never had a message. */
  async head(topic: string): Promise<number> {
    const row = await this.db.selectFrom('topic_heads').select('head').where('topic', '=', topic).executeTakeFirst();
    return row ? Number(row.head) : 0;
  }

  /**
   * Entries after `after`, ascending: at most `limit`, and no more than `maxBytes` of data
   * summed (but at least one entry when there is any).
   */
  async read(topic: string, after: number, limit: number, maxBytes: number): Promise<LogRead> {
    const rows = await this.db
      .selectFrom('messages')
      .select(['seq', 'ts', 'data', 'from_user'])
      .where('topic', '=', topic)
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(Math.max(1, limit) + 1)
      .execute();
    // Read after the entries: the head is then at least their last offset.
    const meta = await this.db
      .selectFrom('topic_heads')
      .select((eb) => [
        'head',
        eb.selectFrom('messages').select((e) => e.fn.min('seq').as('m')).where('topic', '=', topic).as('oldest'),
      ])
      .where('topic', '=', topic)
      .executeTakeFirst();
    const head = meta ? Number(meta.head) : 0;
    const entries: LogEntry[] = [];
    let bytes = 0;
    for (const r of rows) {
      if (entries.length >= limit && entries.length > 0) break;
      bytes += Buffer.byteLength(r.data);
      if (bytes > maxBytes && entries.length > 0) break;
      entries.push({ offset: Number(r.seq), ts: Number(r.ts), data: r.data, from: r.from_user });
    }
    let oldest = meta?.oldest == null ? head + 1 : Number(meta.oldest);
    // A trim between the two reads must not announce a gap the entries do not have.
    if (rows.length > 0) oldest = Math.min(oldest, Number(rows[0]!.seq));
    return { entries, head, oldest, more: rows.length > entries.length };
  }

  /**
   * Delete messages past each topic's retention: beyond the newest `size`, or older than
   * `ttlMs`. Deletes at most `maxDeletes` rows (in short statements, one per topic) and
   * visits at most `maxDeletes` topics per call, resuming where the previous call stopped
   * (topics in order, then from the first again): the caller runs it in the background,
   * periodically. Always a prefix of a topic is deleted, so what is kept stays contiguous
   * (`oldest`..`head`); heads are kept. `size` and `ttlMs` may be Infinity.
   * @returns messages deleted
   */
  async trim(policyOf: (topic: string) => RetentionPolicy, now: number, maxDeletes: number): Promise<number> {
    const topics = await this.db
      .selectFrom('topic_heads')
      .select(['topic', 'head'])
      .where('topic', '>', this.trimCursor)
      .orderBy('topic')
      .limit(Math.max(1, maxDeletes))
      .execute();
    if (topics.length === 0) {
      this.trimCursor = '';
      return 0;
    }
    let deleted = 0;
    let cursor = this.trimCursor;
    for (const { topic, head } of topics) {
      if (deleted >= maxDeletes) break;
      const { size, ttlMs } = policyOf(topic);
      const expiredBefore = Math.max(now - ttlMs, Number.MIN_SAFE_INTEGER);
      const span = await this.db
        .selectFrom('messages')
        .select((eb) => [
          eb.fn.min('seq').as('oldest'),
          eb.fn.max(eb.case().when('ts', '<', expiredBefore).then(eb.ref('seq')).end()).as('expired'),
        ])
        .where('topic', '=', topic)
        .executeTakeFirst();
      if (span?.oldest != null) {
        const oldest = Number(span.oldest);
        // Keep (cut, head]: the newest `size`, minus any prefix that has expired.
        const due = Math.max(Number(head) - Math.max(0, size), span.expired == null ? 0 : Number(span.expired));
        const cut = Math.min(due, oldest - 1 + (maxDeletes - deleted));
        if (cut >= oldest) {
          const r = await this.db.deleteFrom('messages').where('topic', '=', topic).where('seq', '<=', cut).executeTakeFirst();
          deleted += Number(r.numDeletedRows);
        }
        if (cut < due) break; // out of budget: the next call resumes with this topic
      }
      cursor = topic;
    }
    const roundOver = topics.length < Math.max(1, maxDeletes) && cursor === topics[topics.length - 1]!.topic;
    this.trimCursor = roundOver ? '' : cursor;
    return deleted;
  }
}
