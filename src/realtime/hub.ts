/**
 * The Hub delivers to a user (every connection of that user) or to a topic. `LocalHub`
 * reaches the connections of this process; a backplane implementation wraps the same
 * interface to reach every process and box. Payloads are serialized once per delivery,
 * whatever the number of receivers.
 */
import type { Conn } from './conn.js';
import { frames } from './protocol.js';

export interface Hub {
  /** Deliver `data` to every subscriber of `topic`; returns the local receiver count. */
  publish(topic: string, data: unknown, from?: string): number;
  /** Deliver `data` to every open connection of `userId` as topic `user:<id>`. */
  sendToUser(userId: string, data: unknown): number;
  /** Open connections of this user on this process. */
  isConnected(userId: string): boolean;
}

/** Who is where: connections by topic and by user, on this process. */
export class Registry {
  readonly topics = new Map<string, Set<Conn>>();
  readonly users = new Map<string, Set<Conn>>();

  addUser(conn: Conn): void {
    let set = this.users.get(conn.userId);
    if (!set) this.users.set(conn.userId, (set = new Set()));
    set.add(conn);
  }

  /** Returns false when already subscribed. */
  subscribe(conn: Conn, topic: string): boolean {
    conn.topics ??= new Set();
    if (conn.topics.has(topic)) return false;
    conn.topics.add(topic);
    let set = this.topics.get(topic);
    if (!set) this.topics.set(topic, (set = new Set()));
    set.add(conn);
    return true;
  }

  /** Returns false when not subscribed. */
  unsubscribe(conn: Conn, topic: string): boolean {
    if (!conn.topics?.delete(topic)) return false;
    const set = this.topics.get(topic);
    if (set && set.delete(conn) && set.size === 0) this.topics.delete(topic);
    return true;
  }

  /** Drop every subscription of a connection. */
  unsubscribeAll(conn: Conn): void {
    if (conn.topics) for (const t of [...conn.topics]) this.unsubscribe(conn, t);
  }

  /** Forget a closed connection. */
  removeUser(conn: Conn): void {
    const set = this.users.get(conn.userId);
    if (set && set.delete(conn) && set.size === 0) this.users.delete(conn.userId);
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
    const set = this.registry.users.get(userId);
    if (!set) return 0;
    return this.fanout(set, frames.msg(`user:${userId}`, data));
  }

  isConnected(userId: string): boolean {
    return this.registry.users.has(userId);
  }

  private fanout(set: Set<Conn>, text: string): number {
    // Copy first: a slow consumer dropped during delivery leaves the set mid-iteration.
    const targets = set.size === 1 ? set : [...set];
    let n = 0;
    for (const conn of targets) {
      this.deliver(conn, text);
      n++;
    }
    return n;
  }
}
