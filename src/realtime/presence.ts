/**
 * Presence: who is in a topic, per user, for namespaces with presence on.
 *
 * Per topic this process has subscribers for, one map counts each present user's
 * connections (on every process it hears of, through a `PresenceSync`). The Registry tells
 * of every subscription gained or lost (`onMember`), so nothing here is per connection: the
 * cost is one map entry per user per topic (two with a sync: this process's own counts are
 * what it announces).
 *
 * A user joins when their first connection arrives and leaves when their last is gone and
 * stays gone for the grace period: the entry stays at 0 meanwhile, listed in the topic's
 * `leaving` map, whose insertion order is deadline order (one grace for all), so the
 * heartbeat's tick ends expired graces from the head without a timer of their own. A phone
 * that reconnects within the grace produces no event at all.
 *
 * Events go to the topic's subscribers on this process (each process tells its own), but
 * never to the connection whose arrival caused them: it learns the members from `presence`.
 * Above `eventsMax` members a topic switches to count mode: each change only marks the
 * topic, and the tick sends one count frame per topic at most every COUNT_EVERY_MS, so a join
 * storm of N users costs N frames per second of storm instead of N² frames. A count at or
 * below the bound says per-user events resume.
 */
import type { Conn } from './conn.js';
import type { Registry } from './registry.js';

/** Members one `presence` answer lists at most. */
export const PRESENCE_PAGE = 100;
/** Least time between two count frames of a topic in count mode. */
export const COUNT_EVERY_MS = 1000;

/** Keeps the members of other processes in step (the Redis backplane's presence-redis.ts). */
export interface PresenceSync {
  /** This process has its first subscriber of a presence topic: listen, load the others' members. */
  track(topic: string): void;
  /** Its last subscriber is gone: stop listening. */
  untrack(topic: string): void;
  /** This process now holds `n` connections of `user` in `topic` (0: none). */
  local(topic: string, user: string, n: number): void;
  /** Resolves once the other processes' members of a tracked topic are known; null when they are. */
  loaded(topic: string): Promise<void> | null;
}

export interface PresenceOptions {
  /** Whether a topic's namespace tracks presence. */
  on(topic: string): boolean;
  /** How long a user with no connection left stays a member. @default 5000 ms */
  graceMs: number;
  /** Members above which a topic sends counts instead of per-user events. @default 1000 */
  eventsMax: number;
}

/** One presence topic with subscribers on this process. */
class TopicPresence {
  /** Connections per member, on every process known; 0 while the member is within the grace period. */
  readonly users = new Map<string, number>();
  /** Connections per user on this process: only with a sync (without one it equals `users`). */
  readonly local: Map<string, number> | null;
  /** Members with no connection left, by the time they leave, in that order. */
  readonly leaving = new Map<string, number>();
  /** Count mode: more than eventsMax members when the last change came. */
  counting = false;
  /** When the last count frame went out, ms since the epoch. */
  countAt = -Infinity;

  constructor(
    readonly topic: string,
    synced: boolean,
  ) {
    this.local = synced ? new Map() : null;
  }
}

export interface PresenceAnswer {
  count: number;
  members: Array<{ user: string; conns: number }>;
  /** More members than listed. */
  more: boolean;
}

export class Presence {
  private readonly topics = new Map<string, TopicPresence>();
  /** Topics with members in their grace period. */
  private readonly graced = new Set<TopicPresence>();
  /** Topics in count mode with a change not yet counted. */
  private readonly changed = new Set<TopicPresence>();
  /** The other processes' members, when there are other processes. */
  readonly sync: PresenceSync | null;

  /**
   * @param send queues one frame on one connection.
   * @param createSync builds the cross-process sync over this presence. @default none (one process)
   */
  constructor(
    private readonly registry: Registry,
    private readonly send: (conn: Conn, text: string) => void,
    private readonly o: PresenceOptions,
    createSync?: (presence: Presence) => PresenceSync,
  ) {
    this.sync = createSync?.(this) ?? null;
    registry.onInterest((kind, topic, present) => {
      if (kind !== 'topic') return;
      if (present) {
        if (!o.on(topic)) return;
        this.topics.set(topic, new TopicPresence(topic, this.sync !== null));
        this.sync?.track(topic);
        return;
      }
      const t = this.topics.get(topic);
      if (!t) return;
      // Nobody here to tell: graces end unseen (a returning connection is not told of itself).
      this.topics.delete(topic);
      this.graced.delete(t);
      this.changed.delete(t);
      this.sync?.untrack(topic);
    });
    registry.onMember((conn, topic, joined) => {
      const t = this.topics.get(topic);
      if (!t) return;
      const user = conn.userId;
      if (t.local) {
        const n = (t.local.get(user) ?? 0) + (joined ? 1 : -1);
        if (n > 0) t.local.set(user, n);
        else t.local.delete(user);
        this.sync!.local(topic, user, n);
      }
      this.change(t, user, joined ? 1 : -1, conn, false);
    });
  }

  /** Whether the topic's namespace tracks presence. */
  enabled(topic: string): boolean {
    return this.o.on(topic);
  }

  /** Presence topics with subscribers here. */
  get size(): number {
    return this.topics.size;
  }

  /** Resolves once a tracked topic's members on other processes are known; null when they are. */
  loaded(topic: string): Promise<void> | null {
    return this.sync && this.topics.has(topic) ? this.sync.loaded(topic) : null;
  }

  /** A topic's member count and its first `limit` members; null when it is not tracked here. */
  members(topic: string, limit = PRESENCE_PAGE): PresenceAnswer | null {
    const t = this.topics.get(topic);
    if (!t) return null;
    const members: PresenceAnswer['members'] = [];
    for (const [user, conns] of t.users) {
      if (members.length === limit) break;
      members.push({ user, conns });
    }
    return { count: t.users.size, members, more: t.users.size > members.length };
  }

  /**
   * Another process's connections of a user in a tracked topic changed by `delta`.
   * @param silent no event (a topic's members loaded when this process starts tracking it).
   */
  remote(topic: string, user: string, delta: number, silent = false): void {
    const t = this.topics.get(topic);
    if (t) this.change(t, user, delta, null, silent);
  }

  /** This process's own connections per user and topic (what a sync announces). */
  *localCounts(): Iterable<[topic: string, user: string, n: number]> {
    for (const t of this.topics.values()) {
      if (t.local) for (const [user, n] of t.local) yield [t.topic, user, n];
    }
  }

  /** Called on every heartbeat tick: end expired graces, send due counts. */
  tick(now: number): void {
    for (const t of this.graced) {
      for (const [user, at] of t.leaving) {
        if (at > now) break;
        t.leaving.delete(user);
        if (t.users.get(user) !== 0) continue;
        t.users.delete(user);
        this.tell(t, 'leave', user, null);
      }
      if (t.leaving.size === 0) this.graced.delete(t);
    }
    for (const t of this.changed) {
      if (now - t.countAt < COUNT_EVERY_MS) continue;
      this.changed.delete(t);
      t.countAt = now;
      t.counting = t.users.size > this.o.eventsMax;
      this.fanout(t, `{"op":"presence","topic":${JSON.stringify(t.topic)},"count":${t.users.size}}`, null);
    }
  }

  private change(t: TopicPresence, user: string, delta: number, cause: Conn | null, silent: boolean): void {
    const before = t.users.get(user);
    const n = (before ?? 0) + delta;
    if (n < 0) return;
    t.users.set(user, n);
    if (before === undefined) {
      if (!silent) this.tell(t, 'join', user, cause);
    } else if (before === 0 && n > 0) {
      // Back within the grace period: as if never gone.
      t.leaving.delete(user);
    } else if (n === 0) {
      if (this.o.graceMs === 0) {
        t.users.delete(user);
        this.tell(t, 'leave', user, null);
        return;
      }
      t.leaving.delete(user);
      t.leaving.set(user, Date.now() + this.o.graceMs);
      this.graced.add(t);
    }
  }

  private tell(t: TopicPresence, kind: 'join' | 'leave', user: string, cause: Conn | null): void {
    if (!t.counting && t.users.size > this.o.eventsMax) t.counting = true;
    if (t.counting) {
      this.changed.add(t);
      return;
    }
    this.fanout(t, `{"op":"presence","topic":${JSON.stringify(t.topic)},"${kind}":${JSON.stringify(user)}}`, cause);
  }

  private fanout(t: TopicPresence, text: string, except: Conn | null): void {
    const conns = this.registry.topics.get(t.topic);
    if (!conns) return;
    // No copy: a slow consumer dropped by `send` leaves the Set, which iteration tolerates.
    for (const conn of conns) if (conn !== except) this.send(conn, text);
  }
}
