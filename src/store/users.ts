/** User rows: create, look up, update the profile. */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Db } from './db.js';
import type { UsersTable } from './schema.js';

export type UserRow = Selectable<UsersTable>;

/**
 * The `password_hash` of an account without a password (created through Sign in with Apple
 * or Google): no hash matches it, and checking a password against it costs a full hash, so
 * login tells it apart neither by answer nor by timing.
 */
export const NO_PASSWORD = '';

/** The profile as the API shows it (no hash). */
export interface PublicUser {
  id: string;
  email: string;
  displayName: string | null;
  avatarUrl: string | null;
  locale: string | null;
  createdAt: string;
  /** Whether the owner answered a mail sent to `email`. */
  emailVerified: boolean;
  /** A change of email waiting for its verification (`email` stays until then). */
  pendingEmail: string | null;
}

export function toPublicUser(u: UserRow): PublicUser {
  return {
    id: u.id,
    email: u.email,
    displayName: u.display_name,
    avatarUrl: u.avatar_url,
    locale: u.locale,
    createdAt: new Date(Number(u.created_at)).toISOString(),
    emailVerified: Number(u.email_verified) === 1,
    pendingEmail: u.pending_email,
  };
}

export class UserStore {
  constructor(private readonly db: Db) {}

  /**
   * Insert a user; returns null when the email is taken (unique constraint).
   * @param opts.emailVerified the address is already proven (a provider vouched for it). @default false
   */
  async create(email: string, passwordHash: string, displayName: string | null, opts: { emailVerified?: boolean } = {}): Promise<UserRow | null> {
    const now = Date.now();
    const row: UserRow = {
      id: randomUUID(),
      email,
      password_hash: passwordHash,
      display_name: displayName,
      avatar_url: null,
      locale: null,
      created_at: now,
      updated_at: now,
      email_verified: opts.emailVerified ? 1 : 0,
      pending_email: null,
    };
    const result = await this.db
      .insertInto('users')
      .values(row)
      .onConflict((oc) => oc.column('email').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1 ? row : null;
  }

  byEmail(email: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
  }

  /** Whether the user row exists (a primary-key probe; the token check's cache miss). */
  async exists(id: string): Promise<boolean> {
    const row = await this.db.selectFrom('users').select('id').where('id', '=', id).executeTakeFirst();
    return row !== undefined;
  }

  /** A cheap round trip through the users table, for readiness (the caller bounds it with a deadline). */
  async ping(): Promise<void> {
    await this.db.selectFrom('users').select('id').limit(1).execute();
  }

  byId(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Update profile fields; returns the new row, or undefined when the user is gone. */
  async updateProfile(
    id: string,
    patch: Partial<Pick<UserRow, 'display_name' | 'avatar_url' | 'locale'>>,
  ): Promise<UserRow | undefined> {
    await this.db
      .updateTable('users')
      .set({ ...patch, updated_at: Date.now() })
      .where('id', '=', id)
      .execute();
    return this.byId(id);
  }
}
