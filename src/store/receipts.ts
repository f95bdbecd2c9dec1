/**
 * Receipts: per user and topic, the highest offset one of the user's clients has
 * acknowledged (cumulative: "I have everything up to N"). The realtime side batches `recv`
 * frames and HTTP receipts and records them here, one transaction per batch.
 *
 * A receipt on the user's own channel (`user:<id>`) also decides the push: it marks the
 * notifications it covers received and cancels their pending push rows (status `received`),
 * except forced ones (`push: true`). Because that happens in the store, a receipt taken by
 * any process or box cancels a push that any other would send.
 */
import type { Db } from './db.js';
import { isForeignKeyViolation } from './db-errors.js';
import { insertChunks } from './chunks.js';

export interface Receipt {
  userId: string;
  topic: string;
  offset: number;
}

/** Most values in one `in (…)` list: far below SQLite's and PostgreSQL's parameter limits. */
const IN_LIST = 500;

const userChannel = (userId: string) => `user:${userId}`;

export class ReceiptStore {
  constructor(private readonly db: Db) {}

  /**
   * Record a batch of receipts in one transaction. Per user and topic the highest offset
   * wins and a stored receipt never moves back. Offsets are clamped to the topic's head, so a
   * receipt cannot cover (and cancel the push of) a message not yet written. Receipts of
   * users deleted meanwhile are dropped.
   */
  async record(batch: Receipt[], now = Date.now()): Promise<void> {
    const best = new Map<string, Receipt>();
    for (const r of batch) {
      const k = `${r.userId}\u0000${r.topic}`;
      const seen = best.get(k);
      if (!seen || r.offset > seen.offset) best.set(k, r);
    }
    // Read outside the transaction, which then only writes (see message-log.ts on SQLite).
    // A head read a moment early only clamps lower: the client's next receipt covers the rest.
    const heads = await this.heads([...new Set([...best.values()].map((r) => r.topic))]);
    const receipts = [...best.values()]
      .map((r) => ({ ...r, offset: Math.min(Math.floor(r.offset), heads.get(r.topic) ?? 0) }))
      .filter((r) => r.offset > 0);
    if (receipts.length === 0) return;
    try {
      await this.write(receipts, now);
    } catch (err) {
      if (!isForeignKeyViolation(err)) throw err;
      const alive = await this.existingUsers([...new Set(receipts.map((r) => r.userId))]);
      await this.write(
        receipts.filter((r) => alive.has(r.userId)),
        now,
      );
    }
  }

  /** The user's receipt on the topic; 0 when none. */
  async get(userId: string, topic: string): Promise<number> {
    const row = await this.db
      .selectFrom('receipts')
      .select('seq')
      .where('user_id', '=', userId)
      .where('topic', '=', topic)
      .executeTakeFirst();
    return row ? Number(row.seq) : 0;
  }

  private async write(receipts: Receipt[], now: number): Promise<void> {
    if (receipts.length === 0) return;
    const channels = receipts.filter((r) => r.topic === userChannel(r.userId)).map((r) => r.topic);
    await this.db.transaction().execute(async (tx) => {
      const rows = receipts.map((r) => ({ user_id: r.userId, topic: r.topic, seq: r.offset, updated_at: now }));
      for (const chunk of insertChunks(rows)) {
        await tx
          .insertInto('receipts')
          .values(chunk)
          .onConflict((oc) =>
            oc
              .columns(['user_id', 'topic'])
              .doUpdateSet((eb) => ({ seq: eb.ref('excluded.seq'), updated_at: eb.ref('excluded.updated_at') }))
              .where((eb) => eb('receipts.seq', '<', eb.ref('excluded.seq'))),
          )
          .execute();
      }
      for (let i = 0; i < channels.length; i += IN_LIST) {
        const topics = channels.slice(i, i + IN_LIST);
        // The stored receipt (the max) bounds what is covered; the push rows first, while
        // their notifications still read as unreceived.
        await tx
          .updateTable('push_outbox')
          .set({ status: 'received', updated_at: now })
          .where('status', '=', 'pending')
          .where('notification_id', 'in', (eb) =>
            eb
              .selectFrom('notifications as n')
              .select('n.id')
              .where('n.topic', 'in', topics)
              .where('n.received_at', 'is', null)
              .where('n.force', '=', 0)
              .where('n.seq', '<=', (e) =>
                e.selectFrom('receipts as r').select('r.seq').whereRef('r.user_id', '=', 'n.user_id').whereRef('r.topic', '=', 'n.topic'),
              ),
          )
          .execute();
        await tx
          .updateTable('notifications as n')
          .set({ received_at: now })
          .where('n.topic', 'in', topics)
          .where('n.received_at', 'is', null)
          .where('n.seq', '<=', (e) =>
            e.selectFrom('receipts as r').select('r.seq').whereRef('r.user_id', '=', 'n.user_id').whereRef('r.topic', '=', 'n.topic'),
          )
          .execute();
      }
    });
  }

  private async heads(topics: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < topics.length; i += IN_LIST) {
      const rows = await this.db
        .selectFrom('topic_heads')
        .select(['topic', 'head'])
        .where('topic', 'in', topics.slice(i, i + IN_LIST))
        .execute();
      for (const r of rows) out.set(r.topic, Number(r.head));
    }
    return out;
  }

  private async existingUsers(ids: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < ids.length; i += IN_LIST) {
      const rows = await this.db.selectFrom('users').select('id').where('id', 'in', ids.slice(i, i + IN_LIST)).execute();
      for (const r of rows) out.add(r.id);
    }
    return out;
  }
}
