/**
 * Idempotency keys (`pub.key`, `Idempotency-Key` on notify). The caller runs begin(), its
 * work and complete() in one transaction: the key row is inserted first (on conflict
 * nothing), so of concurrent requests with one key exactly one inserts it and the others
 * wait on it — PostgreSQL makes a second inserter of the same primary key wait until the
 * first commits (then it sees that row) or rolls back (then it inserts); SQLite runs one
 * writing transaction at a time. A key is valid for `KEY_TTL_MS`: begin() takes over an
 * older row as if it were absent, and purge() deletes old rows.
 */
import type { Db } from './db.js';

/** How long a key holds its first response: 24 h. */
export const KEY_TTL_MS = 86_400_000;

export type IdempotencyBegin =
  | { state: 'new' }
  /** Completed before: compare `hash` with the request's; equal means answer `response`. */
  | { state: 'done'; hash: string; response: string }
  /** Committed without complete() (a caller that does not finish in one transaction). */
  | { state: 'pending'; hash: string };

export class IdempotencyStore {
  constructor(private readonly db: Db) {}

  /**
   * Claim (scope, key) for a request digest `hash` inside the caller's transaction `tx`.
   * Make it the transaction's first statement (see message-log.ts on SQLite).
   */
  async begin(tx: Db, scope: string, key: string, hash: string, now = Date.now()): Promise<IdempotencyBegin> {
    const claimed = await tx
      .insertInto('idempotency_keys')
      .values({ scope, key, hash, response: null, created_at: now })
      .onConflict((oc) =>
        oc
          .columns(['scope', 'key'])
          .doUpdateSet((eb) => ({ hash: eb.ref('excluded.hash'), response: null, created_at: eb.ref('excluded.created_at') }))
          // Only an expired row is taken over; a live one is left as it is.
          .where('idempotency_keys.created_at', '<=', now - KEY_TTL_MS),
      )
      .executeTakeFirst();
    if (Number(claimed.numInsertedOrUpdatedRows ?? 0) > 0) return { state: 'new' };
    const row = await tx
      .selectFrom('idempotency_keys')
      .select(['hash', 'response'])
      .where('scope', '=', scope)
      .where('key', '=', key)
      .executeTakeFirstOrThrow();
    return row.response === null ? { state: 'pending', hash: row.hash } : { state: 'done', hash: row.hash, response: row.response };
  }

  /** Store the first response of (scope, key), in the transaction that began it. */
  async complete(tx: Db, scope: string, key: string, response: string): Promise<void> {
    await tx.updateTable('idempotency_keys').set({ response }).where('scope', '=', scope).where('key', '=', key).execute();
  }

  /** The stored response of (scope, key), outside a transaction; null when none is stored. */
  async response(scope: string, key: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('idempotency_keys')
      .select('response')
      .where('scope', '=', scope)
      .where('key', '=', key)
      .executeTakeFirst();
    return row?.response ?? null;
  }

  /**
   * Delete keys created before `olderThan` (epoch ms), e.g. `Date.now() - KEY_TTL_MS`.
   * @returns rows deleted
   */
  async purge(olderThan: number): Promise<number> {
    const r = await this.db.deleteFrom('idempotency_keys').where('created_at', '<', olderThan).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
