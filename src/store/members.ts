/**
 * Members of topics in `members` namespaces: one row per (topic, user), deleted with the
 * user. Pages are ordered by user id, and the cursor is the last id of the previous page.
 */
import type { Db } from './db.js';

export interface MemberPage {
  members: Array<{ userId: string; addedAt: number }>;
  /** The last user id of this page when more may follow; null on the last page. */
  next: string | null;
}

export class MemberStore {
  constructor(private readonly db: Db) {}

  /** Whether the user is a member of the topic (a primary-key probe). */
  async isMember(topic: string, userId: string): Promise<boolean> {
    const row = await this.db.selectFrom('topic_members').select('user_id').where('topic', '=', topic).where('user_id', '=', userId).executeTakeFirst();
    return row !== undefined;
  }

  /** Add a member; true when added, false when already one. The user must exist (foreign key). */
  async add(topic: string, userId: string): Promise<boolean> {
    const r = await this.db
      .insertInto('topic_members')
      .values({ topic, user_id: userId, created_at: Date.now() })
      .onConflict((oc) => oc.columns(['topic', 'user_id']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  /** Remove a member; false when they were not one. */
  async remove(topic: string, userId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('topic_members').where('topic', '=', topic).where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** One page of a topic's members, by user id, after `after`. */
  async list(topic: string, limit: number, after: string | undefined): Promise<MemberPage> {
    let q = this.db.selectFrom('topic_members').select(['user_id', 'created_at']).where('topic', '=', topic);
    if (after !== undefined) q = q.where('user_id', '>', after);
    const rows = await q.orderBy('user_id').limit(limit + 1).execute();
    const page = rows.slice(0, limit);
    return {
      members: page.map((r) => ({ userId: r.user_id, addedAt: Number(r.created_at) })),
      next: rows.length > limit ? page.at(-1)!.user_id : null,
    };
  }
}
