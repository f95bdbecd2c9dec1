/**
 * Whether a token's user still exists, asked on every authenticated request and WebSocket
 * upgrade, so it must cost next to nothing: a per-process map from user id to the moment
 * its answer goes stale. A user seen within `ttlMs` passes without a query; after that one
 * primary-key lookup refreshes it, shared by every request that asks meanwhile. A user found
 * gone stays gone (ids are random UUIDs, never reused), so a deleted account's token costs
 * no query either. The map is bounded; the entry refreshed longest ago goes first.
 *
 * The window: another process (or the store edited by hand) deletes a user; this process
 * keeps accepting their token for at most `ttlMs`. The process that deletes a user calls
 * `forget`, and a write that trips the users foreign key does too, so that window closes
 * early wherever the deletion is seen.
 */

const GONE = -1;

export class KnownUsers {
  /** userId -> epoch ms after which the answer is rechecked, or GONE. */
  private readonly entries = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<boolean>>();
  /** Store lookups made, for tests and metrics. */
  lookups = 0;

  /**
   * @param lookup asks the store whether the user row exists.
   * @param ttlMs how long a positive answer is trusted; 0 asks the store every time. @default 5000 ms (USER_CHECK_TTL_MS)
   * @param max entries kept. @default 10000
   */
  constructor(
    private readonly lookup: (userId: string) => Promise<boolean>,
    private readonly ttlMs: number,
    private readonly max = 10_000,
  ) {}

  /** True when the user exists; a plain boolean when the cache answers, so the hot path awaits nothing. */
  check(userId: string): boolean | Promise<boolean> {
    const until = this.entries.get(userId);
    if (until !== undefined) {
      if (until === GONE) return false;
      if (until > Date.now()) return true;
    }
    let pending = this.inflight.get(userId);
    if (!pending) {
      this.lookups++;
      const p: Promise<boolean> = this.lookup(userId).then(
        (exists) => {
          // A `forget` during the lookup wins: its answer may predate the deletion.
          if (this.inflight.get(userId) !== p) return exists;
          this.inflight.delete(userId);
          this.remember(userId, exists ? Date.now() + this.ttlMs : GONE);
          return exists;
        },
        (err: unknown) => {
          if (this.inflight.get(userId) === p) this.inflight.delete(userId);
          throw err;
        },
      );
      this.inflight.set(userId, p);
      pending = p;
    }
    return pending;
  }

  /** Drop what is known of this user (deleted here, or a write found the row gone); the next check asks the store. */
  forget(userId: string): void {
    this.entries.delete(userId);
    this.inflight.delete(userId);
  }

  private remember(userId: string, until: number): void {
    // Delete first so a refreshed entry moves to the end of the insertion order.
    this.entries.delete(userId);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(userId, until);
  }
}
