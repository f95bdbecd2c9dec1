/**
 * The Hub delivers to a user (every connection of that user) or to a topic. `LocalHub`
 * reaches the connections of this process; a backplane implementation wraps the same
 * interface to reach every process and box. Payloads are serialized once per delivery,
 * whatever the number of receivers.
 */
import { holds, type Conn } from './conn.js';
import { frames } from './protocol.js';

export interface Hub {
  /** Deliver `data` to every subscriber of `topic`; returns the local receiver count. */
  publish(topic: string, data: unknown, from?: string): number;
  /** Deliver `data` to every open connection of `userId` as topic `user:<id>`. */
  sendToUser(userId: string, data: unknown): number;
  /** Open connections of this user on this process. */
  isConnected(userId: string): boolean;
}

/**
 * Who is where: connections by topic and by user, on this process. A user with one
 * connection maps straight to it; a Set appears only from the second connection on.
 */
export class Registry {
  readonly topics = new Map<string, Set<Conn>>();
  readonly users = new Map<string, Conn | Set<Conn>>();

  addUser(conn: Conn): void {
    const cur = this.users.get(conn.userId);
    if (cur === undefined) this.users.set(conn.userId, conn);
    else if (cur instanceof Set) cur.add(conn);
    else this.users.set(conn.userId, new Set([cur, conn]));
  }

  /** Forget a closed connection. */
  removeUser(conn: Conn): void {
    const cur = this.users.get(conn.userId);
    if (cur === conn) this.users.delete(conn.userId);
    else if (cur instanceof Set && cur.delete(conn) && cur.size === 0) this.users.delete(conn.userId);
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
    if (!set) this.topics.set(topic, (set = new Set()));
    set.add(conn);
    return true;
  }

  /** Returns false when not subscribed. */
  unsubscribe(conn: Conn, topic: string): boolean {
    const t = conn.topics;
    if (t === topic) conn.topics = null;
    else if (!(t instanceof Set && t.delete(topic))) return false;
    const set = this.topics.get(topic);
    if (set && set.delete(conn) && set.size === 0) this.topics.delete(topic);
    return true;
  }

  /** Drop every subscription of a connection. */
  unsubscribeAll(conn: Conn): void {
    const t = conn.topics;
    if (t === null) return;
    for (const topic of typeof t === 'string' ? [t] : [...t]) this.unsubscribe(conn, topic);
  }
}

export class LocalHub implements Hub {
  /** @param deliver queues one serialized frame on one connection. */
  constructor(
    private readonly registry: Registry,
    private readonly deliver: (conn: Conn, text: string) => void,
  ) {}

  publish(topic: string, data: unknown, from?: string): number {
    const set = this.registry.topics.get(topic);
    if (!set) return 0;
    return this.fanout(set, frames.msg(topic, data, from));
  }

  sendToUser(userId: string, data: unknown): number {
    const conns = this.registry.connsOf(userId);
    if (!conns) return 0;
    return this.fanout(conns, frames.msg(`user:${userId}`, data));
  }

  isConnected(userId: string): boolean {
    return this.registry.users.has(userId);
  }

  private fanout(conns: Iterable<Conn>, text: string): number {
    // Copy first: a slow consumer dropped during delivery leaves the set mid-iteration.
    const targets = Array.isArray(conns) ? conns : [...conns];
    let n = 0;
    for (const conn of targets) {
      this.deliver(conn, text);
      n++;
    }
    return n;
  }
}
