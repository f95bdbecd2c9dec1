/**
 * The Hub delivers to a user (every connection of that user) or to a topic. `LocalHub`
 * reaches the connections of this process; `RedisHub` (backplane.ts) wraps it to reach
 * every process and box. A payload is serialized once per delivery, whatever the number
 * of receivers, and the same text crosses the backplane.
 */
import type { Conn } from './conn.js';
import { frames } from './protocol.js';
import type { Registry } from './registry.js';

export interface Hub {
  /**
   * Deliver `data` to every subscriber of `topic`. Resolves to the connections reached
   * here plus the other processes that had subscribers; never rejects.
   */
  publish(topic: string, data: unknown, from?: string): Promise<number>;
  /** Deliver `data` to every open connection of `userId` (as topic `user:<id>`); as above. */
  sendToUser(userId: string, data: unknown): Promise<number>;
}

export class LocalHub implements Hub {
  /** @param deliver queues one serialized frame on one connection. */
  constructor(
    private readonly registry: Registry,
    private readonly deliver: (conn: Conn, text: string) => void,
  ) {}

  publish(topic: string, data: unknown, from?: string): Promise<number> {
    return Promise.resolve(this.publishText(topic, frames.msg(topic, data, from)));
  }

  sendToUser(userId: string, data: unknown): Promise<number> {
    return Promise.resolve(this.sendTextToUser(userId, frames.msg(`user:${userId}`, data)));
  }

  /** Deliver an already serialized frame to a topic's local subscribers. */
  publishText(topic: string, text: string): number {
    const set = this.registry.topics.get(topic);
    return set ? this.fanout(set, text) : 0;
  }

  /** Deliver an already serialized frame to a user's local connections. */
  sendTextToUser(userId: string, text: string): number {
    const conns = this.registry.connsOf(userId);
    return conns ? this.fanout(conns, text) : 0;
  }

  private fanout(conns: Iterable<Conn>, text: string): number {
    // Copy first: a slow consumer dropped during delivery leaves the set mid-iteration.
    const targets = Array.isArray(conns) ? conns : [...conns];
    for (const conn of targets) this.deliver(conn, text);
    return targets.length;
  }
}
