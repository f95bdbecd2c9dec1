import { holds, type Conn } from './conn.js';

export type InterestListener = (kind: 'user' | 'topic', key: string, present: boolean) => void;
/** Told of every subscription a connection gains (`joined`) or loses (presence). */
export type MemberListener = (conn: Conn, topic: string, joined: boolean) => void;

/**
 * Who is where: connections by topic and by user, on this process. A user with one
 * connection maps straight to it; a Set appears only from the second connection on.
 */
export class Registry {
  readonly topics = new Map<string, Set<Conn>>();
  readonly users = new Map<string, Conn | Set<Conn>>();
  private readonly interest = new Set<InterestListener>();
  private readonly members = new Set<MemberListener>();

  /**
   * Be told when this process gains or loses its first/last connection of a user or topic
   * (the backplane subscribes only to channels with local interest). Returns the unsubscribe.
   */
  onInterest(listener: InterestListener): () => void {
    this.interest.add(listener);
    return () => this.interest.delete(listener);
  }

  /**
   * Be told of every topic a connection gains or loses (presence counts users per topic).
   * On a gain the topic's interest is told first; on a loss, last. Returns the unsubscribe.
   */
  onMember(listener: MemberListener): () => void {
    this.members.add(listener);
    return () => this.members.delete(listener);
  }

  private tell(kind: 'user' | 'topic', key: string, present: boolean): void {
    for (const l of this.interest) l(kind, key, present);
  }

  addUser(conn: Conn): void {
    const cur = this.users.get(conn.userId);
    if (cur === undefined) {
      this.users.set(conn.userId, conn);
      this.tell('user', conn.userId, true);
    }
    else if (cur instanceof Set) cur.add(conn);
    else this.users.set(conn.userId, new Set([cur, conn]));
  }

  /** Forget a closed connection. */
  removeUser(conn: Conn): void {
    const cur = this.users.get(conn.userId);
    if (cur === conn || (cur instanceof Set && cur.delete(conn) && cur.size === 0)) {
      this.users.delete(conn.userId);
      this.tell('user', conn.userId, false);
    }
  }

  /** Connections of a user on this process. */
  connsOf(userId: string): Iterable<Conn> | undefined {
    const cur = this.users.get(userId);
    return cur === undefined ? undefined : cur instanceof Set ? cur : [cur];
  }

  /** Every connection, once each. */
  *all(): Iterable<Conn> {
    for (const cur of this.users.values()) {
      if (cur instanceof Set) yield* cur;
      else yield cur;
    }
  }

  /** Returns false when already subscribed. */
  subscribe(conn: Conn, topic: string): boolean {
    if (holds(conn, topic)) return false;
    const t = conn.topics;
    if (t === null) conn.topics = topic;
    else if (typeof t === 'string') conn.topics = new Set([t, topic]);
    else t.add(topic);
    let set = this.topics.get(topic);
    if (!set) {
      this.topics.set(topic, (set = new Set()));
      this.tell('topic', topic, true);
    }
    set.add(conn);
    for (const l of this.members) l(conn, topic, true);
    return true;
  }

  /** Returns false when not subscribed. */
  unsubscribe(conn: Conn, topic: string): boolean {
    const t = conn.topics;
    if (t === topic) conn.topics = null;
    else if (!(t instanceof Set && t.delete(topic))) return false;
    const set = this.topics.get(topic);
    if (set && set.delete(conn)) {
      for (const l of this.members) l(conn, topic, false);
      // A listener's fan-out may drop a slow consumer of this topic: told once, whoever empties it.
      if (set.size === 0 && this.topics.get(topic) === set) {
        this.topics.delete(topic);
        this.tell('topic', topic, false);
      }
    }
    return true;
  }

  /** Drop every subscription of a connection. */
  unsubscribeAll(conn: Conn): void {
    const t = conn.topics;
    if (t === null) return;
    for (const topic of typeof t === 'string' ? [t] : [...t]) this.unsubscribe(conn, topic);
  }
}
