/**
 * Deleting an account (`DELETE /v1/me`), in this order:
 *
 * 1. `before` hooks, with the account still whole: work that needs the user's rows, such as
 *    revoking the Sign in with Apple token Apple requires apps to revoke at deletion. A hook
 *    that throws stops the deletion (nothing is deleted; the request fails).
 * 2. Every session is revoked: on every process the user's sockets close with 4003 and their
 *    tokens are refused from now on, including the seconds the deletion takes.
 * 3. One transaction deletes the user and everything theirs (AccountStore.deleteUser).
 * 4. This process forgets the user (KnownUsers): their token is 401 here at once; other
 *    processes refuse it through the revocation of step 2.
 * 5. `after` hooks, with the account gone: their failures are logged, never undo anything.
 *
 * New work around a deletion is one more hook in server.ts's list, not an edit here.
 */
import type { Logger } from '../../observability/logger.js';
import type { AccountStore } from '../../store/accounts.js';
import type { KnownUsers } from './known-users.js';

export interface DeletionHook {
  /** Name for the logs. */
  name: string;
  /** Runs before anything is deleted; throwing stops the deletion. */
  before?(userId: string): Promise<void>;
  /** Runs once the account is gone; a failure is logged. */
  after?(userId: string): Promise<void>;
}

export class AccountDeletion {
  constructor(
    private readonly accounts: AccountStore,
    private readonly knownUsers: KnownUsers,
    /** Revoke every session of the user on every process (closes sockets with 4003, refuses tokens). */
    private readonly revokeAll: (userId: string) => Promise<void>,
    private readonly log: Logger,
    private readonly hooks: readonly DeletionHook[] = [],
  ) {}

  /** Delete the user and everything theirs; false when there was no such user. */
  async delete(userId: string): Promise<boolean> {
    for (const h of this.hooks) await h.before?.(userId);
    await this.revokeAll(userId);
    const deleted = await this.accounts.deleteUser(userId);
    this.knownUsers.forget(userId);
    for (const h of this.hooks) {
      await h.after?.(userId).catch((err: unknown) => this.log.warn({ err, hook: h.name }, 'account deletion: an after hook failed'));
    }
    if (deleted) this.log.info({ userId }, 'account deleted');
    return deleted;
  }
}
