/**
 * Device sessions and their refresh tokens (migration 0007). A refresh token is 32 random
 * bytes; only its SHA-256 is stored (a fast hash is enough for a secret of that entropy, and
 * lets the presented token be found by primary key). Rotation marks the presented token
 * rotated and inserts its successor in one transaction whose first statement is that update
 * (on SQLite a transaction that reads first cannot wait for the write lock; on PostgreSQL the
 * row lock makes two concurrent rotations of one token take turns, and the second sees it
 * rotated). A rotated token presented again is reuse: within the grace its session gets a
 * fresh token (the answer was lost on the way), after it the whole session is revoked.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Db } from './db.js';
import type { Database, SessionsTable } from './schema.js';

export type SessionRow = SessionsTable;

/** A new opaque refresh token (256 random bits, base64url). */
export const newRefreshToken = (): string => randomBytes(32).toString('base64url');

/** The stored form of a refresh token. */
export const hashRefreshToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** What presenting a refresh token did. */
export type RotateResult =
  /** Rotated (or re-issued within the grace): `next` is the new token's hash, already stored. */
  | { kind: 'rotated'; session: SessionRow; reissued: boolean }
  /** Unknown, or expired. */
  | { kind: 'invalid' }
  /** Its session was revoked before. */
  | { kind: 'revoked'; session: SessionRow }
  /** A rotated token presented after the grace: its session is revoked now. */
  | { kind: 'reused'; session: SessionRow };

export interface RotateOptions {
  /** The hash of the token to hand out if this rotates. */
  nextHash: string;
  now: number;
  /** Lifetime of the new token. */
  ttlMs: number;
  /** How long after its rotation a token is re-issued rather than taken for theft; 0: never. */
  graceMs: number;
}

export class SessionStore {
  constructor(private readonly db: Db) {}

  /**
   * Open a session with its first refresh token. Throws the driver's foreign-key error when
   * the user is gone.
   */
  async create(userId: string, label: string | null, refreshHash: string, now: number, ttlMs: number): Promise<SessionRow> {
    const row: SessionRow = {
      id: randomUUID(),
      user_id: userId,
      label,
      created_at: now,
      last_used_at: now,
      expires_at: now + ttlMs,
      revoked_at: null,
    };
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('sessions').values(row).execute();
      await tx.insertInto('refresh_tokens').values({ hash: refreshHash, session_id: row.id, created_at: now, expires_at: now + ttlMs, rotated_at: null }).execute();
    });
    return row;
  }

  /** Present a refresh token (by hash): rotate it, re-issue within the grace, or detect reuse. */
  rotate(hash: string, o: RotateOptions): Promise<RotateResult> {
    return this.db.transaction().execute(async (tx): Promise<RotateResult> => {
      const taken = await tx
        .updateTable('refresh_tokens')
        .set({ rotated_at: o.now })
        .where('hash', '=', hash)
        .where('rotated_at', 'is', null)
        .where('expires_at', '>', o.now)
        .executeTakeFirst();
      const token = await tx.selectFrom('refresh_tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
      if (!token) return { kind: 'invalid' };
      const session = await tx.selectFrom('sessions').selectAll().where('id', '=', token.session_id).executeTakeFirst();
      if (!session) return { kind: 'invalid' };
      if (session.revoked_at !== null) return { kind: 'revoked', session };
      if (Number(taken.numUpdatedRows) === 1) return { kind: 'rotated', session: await this.extend(tx, session, o), reissued: false };
      if (token.rotated_at === null || session.expires_at <= o.now) return { kind: 'invalid' }; // expired
      if (o.graceMs > 0 && o.now - token.rotated_at <= o.graceMs) {
        // The successor handed out at the rotation may never have arrived: it stops working
        // too, and this answer carries a new one.
        await tx.updateTable('refresh_tokens').set({ rotated_at: o.now }).where('session_id', '=', session.id).where('rotated_at', 'is', null).execute();
        return { kind: 'rotated', session: await this.extend(tx, session, o), reissued: true };
      }
      await tx.updateTable('sessions').set({ revoked_at: o.now }).where('id', '=', session.id).where('revoked_at', 'is', null).execute();
      return { kind: 'reused', session: { ...session, revoked_at: o.now } };
    });
  }

  /** Store the successor token and push the session's expiry and last use. */
  private async extend(tx: Transaction<Database>, session: SessionRow, o: RotateOptions): Promise<SessionRow> {
    const expires = o.now + o.ttlMs;
    await tx.insertInto('refresh_tokens').values({ hash: o.nextHash, session_id: session.id, created_at: o.now, expires_at: expires, rotated_at: null }).execute();
    await tx.updateTable('sessions').set({ last_used_at: o.now, expires_at: expires }).where('id', '=', session.id).execute();
    return { ...session, last_used_at: o.now, expires_at: expires };
  }

  /** The session a refresh token (current or rotated) belongs to. */
  async byRefreshHash(hash: string): Promise<SessionRow | undefined> {
    return this.db
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .selectAll('sessions')
      .where('refresh_tokens.hash', '=', hash)
      .executeTakeFirst();
  }

  /** Revoke one session of a user; false when there is no such live session. */
  async revoke(userId: string, sessionId: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('sessions')
      .set({ revoked_at: now })
      .where('id', '=', sessionId)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Revoke every live session of a user but `exceptSid`, and set the user's cutoff: access
   * tokens issued before `notBefore` (epoch seconds), but those of `exceptSid`, are refused.
   * Returns the sessions revoked.
   */
  revokeAll(userId: string, exceptSid: string | undefined, now: number, notBefore: number): Promise<string[]> {
    return this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('token_cutoffs')
        .values({ user_id: userId, not_before: notBefore, except_sid: exceptSid ?? null, updated_at: now })
        .onConflict((oc) => oc.column('user_id').doUpdateSet({ not_before: notBefore, except_sid: exceptSid ?? null, updated_at: now }))
        .execute();
      let q = tx.updateTable('sessions').set({ revoked_at: now }).where('user_id', '=', userId).where('revoked_at', 'is', null);
      if (exceptSid !== undefined) q = q.where('id', '<>', exceptSid);
      const rows = await q.returning('id').execute();
      return rows.map((r) => r.id);
    });
  }

  /** A user's live sessions (not revoked, not expired), newest first. */
  list(userId: string, now: number): Promise<SessionRow[]> {
    return this.db
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .execute();
  }

  /** Sessions revoked at or after `since` (ms): what a process that missed the news must learn. */
  revokedSince(since: number): Promise<Array<{ id: string; user_id: string; revoked_at: number }>> {
    return this.db
      .selectFrom('sessions')
      .select(['id', 'user_id', 'revoked_at'])
      .where('revoked_at', '>=', since)
      .execute() as Promise<Array<{ id: string; user_id: string; revoked_at: number }>>;
  }

  /** Cutoffs written at or after `since` (ms). */
  cutoffsSince(since: number): Promise<Array<{ user_id: string; not_before: number; except_sid: string | null; updated_at: number }>> {
    return this.db.selectFrom('token_cutoffs').selectAll().where('updated_at', '>=', since).execute();
  }

  /**
   * Delete what no longer matters: sessions expired or revoked before `before` (ms; their
   * refresh tokens go with them), rotated tokens expired before it (presented, they would be
   * refused as expired anyway), and cutoffs written before it. Returns the sessions deleted.
   */
  async sweep(before: number): Promise<number> {
    const r = await this.db
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]))
      .executeTakeFirst();
    await this.db.deleteFrom('refresh_tokens').where('expires_at', '<', before).execute();
    await this.db.deleteFrom('token_cutoffs').where('updated_at', '<', before).execute();
    return Number(r.numDeletedRows);
  }
}
