/**
 * Provider identities (Sign in with Apple / Google) and the one decision that matters for
 * security: which account a verified provider token opens.
 *
 * 1. The identity (provider, subject) exists: its user. The provider's subject is stable;
 *    the email may change at the provider and is only recorded.
 *    When the provider vouches for the account's own address, the account's email becomes
 *    verified (an account created unverified, its owner verified later at the provider).
 * 2. Otherwise the token's email belongs to an account: linked only when the provider
 *    vouches for the email AND the account's own email is verified (`users.email_verified`).
 *    Anyone can sign up with a password under someone else's address; linking to such an
 *    account would hand the attacker's password a door into the victim's provider sign-in.
 *    Otherwise `email_taken`.
 * 3. Otherwise a new account: no password (`NO_PASSWORD`), its email as the provider gave it,
 *    verified when the provider vouches for it.
 *
 * All of it runs in one transaction whose first statement is a write (the identity's
 * UPDATE), so SQLite takes its write lock before reading (see message-log.ts). Two first
 * sign-ins racing on PostgreSQL: the second's INSERT waits for the first to commit, does
 * nothing (ON CONFLICT DO NOTHING), and the whole decision runs again, finding case 1.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from './db.js';
import type { IdentitiesTable } from './schema.js';
import { NO_PASSWORD, type UserRow } from './users.js';

export type IdentityRow = IdentitiesTable;

/** A verified provider token's facts, as the store needs them. */
export interface ProviderAccount {
  provider: IdentityRow['provider'];
  subject: string;
  clientId: string;
  /** Lower-cased; null when the provider gave none. */
  email: string | null;
  emailVerified: boolean;
  /** For a new account. */
  displayName: string | null;
  /** Apple: a fresh refresh token from the code exchange, replacing the stored one. */
  refreshToken?: string;
}

export type SignInOutcome =
  | { kind: 'user'; user: UserRow; created: boolean; linked: boolean }
  /** The email belongs to an account that may not be linked (either side unverified). */
  | { kind: 'email_taken' }
  /** No identity, and the provider gave no email to create an account with. */
  | { kind: 'email_required' };

class Raced extends Error {}

/** Attempts of the decision when a concurrent first sign-in wins a race. */
const ATTEMPTS = 3;

export class IdentityStore {
  constructor(private readonly db: Db) {}

  /** Find or create the account `p` opens (see the file's opening paragraph). */
  async signIn(p: ProviderAccount): Promise<SignInOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute((tx) => this.decide(tx, p));
      } catch (err) {
        if (!(err instanceof Raced) || attempt >= ATTEMPTS) throw err;
      }
    }
  }

  private async decide(tx: Db, p: ProviderAccount): Promise<SignInOutcome> {
    const now = Date.now();
    const found = await tx
      .updateTable('identities')
      .set({
        email: p.email,
        email_verified: p.emailVerified ? 1 : 0,
        client_id: p.clientId,
        updated_at: now,
        ...(p.refreshToken !== undefined && { refresh_token: p.refreshToken }),
      })
      .where('provider', '=', p.provider)
      .where('subject', '=', p.subject)
      .returning('user_id')
      .executeTakeFirst();
    if (found) {
      // The cascade removes identities with their user: a row without one cannot be seen here.
      let user = (await tx.selectFrom('users').selectAll().where('id', '=', found.user_id).executeTakeFirst())!;
      if (p.emailVerified && p.email === user.email && Number(user.email_verified) !== 1) {
        await tx.updateTable('users').set({ email_verified: 1, updated_at: now }).where('id', '=', user.id).execute();
        user = { ...user, email_verified: 1, updated_at: now };
      }
      return { kind: 'user', user, created: false, linked: false };
    }
    if (p.email === null) return { kind: 'email_required' };
    const existing = await tx.selectFrom('users').selectAll().where('email', '=', p.email).executeTakeFirst();
    if (existing) {
      if (!p.emailVerified || Number(existing.email_verified) !== 1) return { kind: 'email_taken' };
      await this.insertIdentity(tx, p, existing.id, now);
      return { kind: 'user', user: existing, created: false, linked: true };
    }
    const user: UserRow = {
      id: randomUUID(),
      email: p.email,
      password_hash: NO_PASSWORD,
      display_name: p.displayName,
      avatar_url: null,
      locale: null,
      created_at: now,
      updated_at: now,
      email_verified: p.emailVerified ? 1 : 0,
      pending_email: null,
    };
    const inserted = await tx.insertInto('users').values(user).onConflict((oc) => oc.column('email').doNothing()).executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) throw new Raced();
    await this.insertIdentity(tx, p, user.id, now);
    return { kind: 'user', user, created: true, linked: false };
  }

  private async insertIdentity(tx: Db, p: ProviderAccount, userId: string, now: number): Promise<void> {
    const r = await tx
      .insertInto('identities')
      .values({
        provider: p.provider,
        subject: p.subject,
        user_id: userId,
        client_id: p.clientId,
        email: p.email,
        email_verified: p.emailVerified ? 1 : 0,
        refresh_token: p.refreshToken ?? null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.columns(['provider', 'subject']).doNothing())
      .executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0) !== 1) throw new Raced();
  }

  /** The user's identities, oldest first. */
  list(userId: string): Promise<IdentityRow[]> {
    return this.db.selectFrom('identities').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  }

  /** The Apple refresh tokens of a user, with the client id each was issued to (for revocation at deletion). */
  appleTokens(userId: string): Promise<Array<{ refreshToken: string; clientId: string }>> {
    return this.db
      .selectFrom('identities')
      .select(['refresh_token as refreshToken', 'client_id as clientId'])
      .where('user_id', '=', userId)
      .where('provider', '=', 'apple')
      .where('refresh_token', 'is not', null)
      .execute() as Promise<Array<{ refreshToken: string; clientId: string }>>;
  }
}
