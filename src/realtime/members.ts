/**
 * Membership of `members` topics as the gateway asks it on `sub`, `history` and `pub`: a
 * per-process cache in front of the store, so a client that resubscribes after every
 * reconnect costs no query. Entries exist only for users connected to this process (the
 * gateway calls `forgetUser` when a user's last connection here closes), which is what makes
 * invalidation exact: a membership change travels on the user's own backplane channel, and
 * exactly the processes holding that user receive it and call `invalidate`.
 *
 * Each invalidation bumps `generation`. A lookup that was in flight during one is not
 * cached (its answer may predate the change), and the gateway re-checks a subscription
 * that completed across a change (gateway.ts, `sub`). Entries also go stale after `ttlMs`,
 * which bounds what a change missed while the backplane was down can cost.
 */

/** Asks the store whether a user is a member of a topic. */
export type MemberLookup = (topic: string, userId: string) => Promise<boolean>;

export class MemberCache {
  /** userId -> topic -> [member, epoch ms after which it is asked again]. */
  private readonly byUser = new Map<string, Map<string, [boolean, number]>>();
  private size = 0;
  /** Bumped by every invalidation. */
  generation = 0;
  /** Store lookups made, for tests. */
  lookups = 0;

  /**
   * @param ttlMs how long an answer is trusted. @default 60000 ms
   * @param max entries kept; past it the cache of the user asked longest ago goes. @default 100000
   */
  constructor(
    private readonly lookup: MemberLookup,
    private readonly ttlMs = 60_000,
    private readonly max = 100_000,
  ) {}

  /** Whether userId is a member of topic; a plain boolean when the cache answers. */
  check(topic: string, userId: string): boolean | Promise<boolean> {
    const hit = this.byUser.get(userId)?.get(topic);
    if (hit !== undefined && hit[1] > Date.now()) return hit[0];
    const gen = this.generation;
    this.lookups++;
    return this.lookup(topic, userId).then((member) => {
      if (gen === this.generation) this.remember(topic, userId, member);
      return member;
    });
  }

  /** A membership changed (here or on another process): the next check asks the store. */
  invalidate(topic: string, userId: string): void {
    this.generation++;
    const topics = this.byUser.get(userId);
    if (topics?.delete(topic)) this.size--;
  }

  /** The user's last connection on this process closed: nothing would invalidate its entries. */
  forgetUser(userId: string): void {
    const topics = this.byUser.get(userId);
    if (!topics) return;
    this.size -= topics.size;
    this.byUser.delete(userId);
  }

  private remember(topic: string, userId: string, member: boolean): void {
    let topics = this.byUser.get(userId);
    if (!topics) {
      if (this.size >= this.max) this.forgetUser(this.byUser.keys().next().value!);
      this.byUser.set(userId, (topics = new Map()));
    }
    if (!topics.has(topic)) this.size++;
    topics.set(topic, [member, Date.now() + this.ttlMs]);
  }
}
