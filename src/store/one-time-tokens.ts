/**
 * One-time tokens of the mail flows (verify an address, confirm a change of email, reset a
 * password). The token is 32 random bytes (base64url), mailed once and never stored: the
 * table keeps its SHA-256, enough for a lookup and useless to whoever reads the table (a
 * token with 256 bits of entropy needs no slow hash). Issuing one deletes the user's earlier
 * tokens of the same kind, so only the newest link works and the table holds at most one
 * row per user and kind. Consuming is one conditional UPDATE — unused, unexpired, of an
 * allowed kind — so of two requests racing with one token exactly one gets the row.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from './db.js';
import type { OneTimeTokenKind } from './schema.js';

/** What a consumed token was for. */
export interface ConsumedToken {
  userId: string;
  kind: OneTimeTokenKind;
  /** The address the token was sent to. */
  email: string;
}

/** SHA-256 of a token, base64url: the stored form. */
export const tokenHash = (token: string): string => createHash('sha256').update(token).digest('base64url');

/** The longest token text looked up; longer input is nobody's token. */
const MAX_TOKEN_CHARS = 128;

export class OneTimeTokenStore {
  constructor(private readonly db: Db) {}

  /**
   * A fresh token for `userId`; earlier tokens of this kind stop working.
   * @param ttlMs lifetime in milliseconds.
   * @param tx run inside the caller's transaction. @default its own
   */
  async issue(userId: string, kind: OneTimeTokenKind, email: string, ttlMs: number, now = Date.now(), tx?: Db): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const write = async (t: Db) => {
      await t.deleteFrom('one_time_tokens').where('user_id', '=', userId).where('kind', '=', kind).execute();
      await t
        .insertInto('one_time_tokens')
        .values({ hash: tokenHash(token), user_id: userId, kind, email, expires_at: now + ttlMs, used_at: null, created_at: now })
        .execute();
    };
    if (tx) await write(tx);
    else await this.db.transaction().execute(write);
    return token;
  }

  /**
   * Mark the token used, in `tx`, when it is unused, unexpired and of one of `kinds`; null
   * otherwise (unknown, used, expired, or meant for another flow). The caller's transaction
   * decides whether the use sticks: a rollback leaves the token unused.
   */
  async consume(tx: Db, token: string, kinds: readonly OneTimeTokenKind[], now = Date.now()): Promise<ConsumedToken | null> {
    if (token.length === 0 || token.length > MAX_TOKEN_CHARS) return null;
    const row = await tx
      .updateTable('one_time_tokens')
      .set({ used_at: now })
      .where('hash', '=', tokenHash(token))
      .where('kind', 'in', kinds)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returning(['user_id', 'kind', 'email'])
      .executeTakeFirst();
    return row ? { userId: row.user_id, kind: row.kind, email: row.email } : null;
  }

  /** Delete the user's tokens of these kinds (a reset makes older reset links useless). */
  async revoke(tx: Db, userId: string, kinds: readonly OneTimeTokenKind[]): Promise<void> {
    await tx.deleteFrom('one_time_tokens').where('user_id', '=', userId).where('kind', 'in', kinds).execute();
  }
}
