/**
 * The account changes that mail tokens and the owner make: verify an address, confirm a
 * change of email, reset or change the password, and delete the account with everything
 * that is theirs. Each runs in one transaction whose first statement writes (SQLite then
 * holds the write lock from the start, see message-log.ts), so a failure halfway leaves
 * nothing half-done, and a token consumed by a step that fails stays unused.
 */
import type { Db } from './db.js';
import { isUniqueViolation } from './db-errors.js';
import type { OneTimeTokenStore } from './one-time-tokens.js';
import type { UserRow } from './users.js';

/** Why a token did nothing: unknown, used, expired, or mailed to an address the account no longer waits for. */
export type TokenRefusal = 'invalid_token' | 'email_taken';

/** Thrown inside a transaction to roll it back with a refusal. */
class Refused extends Error {
  constructor(readonly reason: TokenRefusal) {
    super(reason);
  }
}

async function refusing<T>(run: () => Promise<T>): Promise<T | TokenRefusal> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof Refused) return err.reason;
    if (isUniqueViolation(err)) return 'email_taken';
    throw err;
  }
}

/** A user's own channel: their notifications' log. */
const userChannel = (userId: string) => `user:${userId}`;

export class AccountStore {
  constructor(
    private readonly db: Db,
    private readonly tokens: OneTimeTokenStore,
  ) {}

  /**
   * Consume a verification token: the address it was sent to becomes verified (and, for a
   * change of email, becomes the account's address). The user row after the change, or why not.
   */
  verifyEmail(token: string, now = Date.now()): Promise<UserRow | TokenRefusal> {
    return refusing(() =>
      this.db.transaction().execute(async (tx) => {
        const used = await this.tokens.consume(tx, token, ['verify_email', 'change_email'], now);
        if (!used) throw new Refused('invalid_token');
        const user = await tx.selectFrom('users').selectAll().where('id', '=', used.userId).executeTakeFirstOrThrow();
        if (used.kind === 'verify_email') {
          if (user.email !== used.email) throw new Refused('invalid_token');
          await tx.updateTable('users').set({ email_verified: 1, updated_at: now }).where('id', '=', user.id).execute();
        } else {
          if (user.pending_email !== used.email) throw new Refused('invalid_token');
          const taken = await tx.selectFrom('users').select('id').where('email', '=', used.email).executeTakeFirst();
          if (taken) throw new Refused('email_taken');
          await tx
            .updateTable('users')
            .set({ email: used.email, email_verified: 1, pending_email: null, updated_at: now })
            .where('id', '=', user.id)
            .execute();
        }
        return tx.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
      }),
    );
  }

  /**
   * Consume a reset token and set the new password hash. The link proves the owner reads
   * the account's mail, so the address counts as verified too; every other reset link dies.
   * @returns the user's id, or why not.
   */
  resetPassword(token: string, passwordHash: string, now = Date.now()): Promise<string | TokenRefusal> {
    return refusing(() =>
      this.db.transaction().execute(async (tx) => {
        const used = await this.tokens.consume(tx, token, ['reset_password'], now);
        if (!used) throw new Refused('invalid_token');
        const r = await tx
          .updateTable('users')
          .set({ password_hash: passwordHash, email_verified: 1, updated_at: now })
          .where('id', '=', used.userId)
          .where('email', '=', used.email)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) throw new Refused('invalid_token');
        await this.tokens.revoke(tx, used.userId, ['reset_password']);
        return used.userId;
      }),
    );
  }

  /** Set a new password hash (the caller checked the current one). False when the user is gone. */
  async setPassword(userId: string, passwordHash: string, now = Date.now()): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx.updateTable('users').set({ password_hash: passwordHash, updated_at: now }).where('id', '=', userId).executeTakeFirst();
      await this.tokens.revoke(tx, userId, ['reset_password']);
      return Number(r.numUpdatedRows) === 1;
    });
  }

  /**
   * Record `email` as the address the account waits to have verified, and issue its token.
   * @returns the token, or null when the user is gone.
   */
  async requestEmailChange(userId: string, email: string, ttlMs: number, now = Date.now()): Promise<string | null> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx.updateTable('users').set({ pending_email: email, updated_at: now }).where('id', '=', userId).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return null;
      return this.tokens.issue(userId, 'change_email', email, ttlMs, now, tx);
    });
  }

  /**
   * Delete the user and everything that is theirs, in one transaction: their channel's log
   * (`user:<id>`: messages, head), notifications to them and every push row for them or
   * their devices, devices, events and daily counts, receipts, memberships, publish
   * idempotency keys, one-time tokens, and rows of any later table that references
   * `users.id` with ON DELETE CASCADE (sessions, identities). Messages they published to
   * shared topics stay in those topics' history for the others, de-attributed (`from`
   * becomes null). False when there was no such user.
   */
  async deleteUser(userId: string): Promise<boolean> {
    const channel = userChannel(userId);
    return this.db.transaction().execute(async (tx) => {
      // The first statement writes: it takes SQLite's write lock before any read. Push rows
      // name their device by id only (no foreign key), so they go while the devices are there.
      await tx
        .deleteFrom('push_outbox')
        .where((eb) =>
          eb.or([
            eb('device_id', 'in', eb.selectFrom('devices').select('id').where('user_id', '=', userId)),
            eb('notification_id', 'in', eb.selectFrom('notifications').select('id').where((n) => n.or([n('user_id', '=', userId), n('topic', '=', channel)]))),
          ]),
        )
        .execute();
      await tx.deleteFrom('notifications').where((eb) => eb.or([eb('user_id', '=', userId), eb('topic', '=', channel)])).execute();
      await tx.deleteFrom('messages').where('topic', '=', channel).execute();
      await tx.updateTable('messages').set({ from_user: null }).where('from_user', '=', userId).execute();
      await tx.deleteFrom('topic_heads').where('topic', '=', channel).execute();
      await tx.deleteFrom('idempotency_keys').where('scope', '=', `pub:${userId}`).execute();
      // These tables cascade from users.id too; named here so that what "theirs" means is
      // read in one place, whatever a future migration does to their foreign keys.
      for (const table of ['devices', 'events', 'event_counts', 'receipts', 'topic_members', 'one_time_tokens'] as const) {
        await tx.deleteFrom(table).where('user_id', '=', userId).execute();
      }
      const gone = await tx.deleteFrom('users').where('id', '=', userId).executeTakeFirst();
      return Number(gone.numDeletedRows) === 1;
    });
  }
}
