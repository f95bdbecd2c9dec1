/**
 * The Hub fans a message out to a topic's connections; a user's channel `user:<id>` reaches
 * every connection of that user. `LocalHub` reaches the connections of this process;
 * `RedisHub` (backplane/redis-hub.ts) wraps it to reach every process and box. A message is
 * serialized once, whatever the number of receivers, and the same text crosses the
 * backplane. Messages with an offset pass through the per-topic order (topic-order.ts), so
 * each connection sees a topic's messages at most once and in offset order.
 *
 * Membership changes travel the same way, to the processes that hold the user: each one
 * refreshes its membership cache and, on a removal, unsubscribes the user's live
 * connections from the topic (the gateway's `onMembership`).
 */
import type { Conn } from './conn.js';
import { frames } from './protocol.js';
import type { Registry } from './registry.js';
import { TopicOrder, type GapReader } from './topic-order.js';

/** One message to fan out. */
export interface Outgoing {
  topic: string;
  /** The payload as JSON text. */
  dataJson: string;
  from: string | null;
  /** Its place in the topic's log; null where the namespace keeps no history. */
  offset: number | null;
  /** Server time of the publish, ms since the epoch. */
  ts: number;
}

/** A user was added to (`member: true`) or removed from a `members` topic. */
export interface MembershipChange {
  topic: string;
  userId: string;
  member: boolean;
}

export interface Hub {
  /**
   * Fan out one message. Resolves to the connections reached here plus the other processes
   * that have connections for it (0 when nobody holds it anywhere).
   */
  publish(m: Outgoing): Promise<number>;
  /** Apply a membership change on every process that holds the user, this one included. */
  membership(change: MembershipChange): Promise<void>;
}

const USER = 'user:';

/** The connections a topic reaches on this process. */
function targets(registry: Registry, topic: string): Iterable<Conn> | undefined {
  return topic.startsWith(USER) ? registry.connsOf(topic.slice(USER.length)) : registry.topics.get(topic);
}

/**
 * True when `conn` must not get `offset` of `topic` live: it is replaying that topic, or has
 * just replayed past it (conn.skip). The mark goes once live delivery passes it.
 */
function skipped(conn: Conn, topic: string, offset: number): boolean {
  const until = conn.skip!.get(topic);
  if (until === undefined) return false;
  if (offset <= until) return true;
  if (until !== Infinity) {
    conn.skip!.delete(topic);
    if (conn.skip!.size === 0) conn.skip = null;
  }
  return false;
}

export class LocalHub implements Hub {
  readonly order: TopicOrder;

  /**
   * @param deliver queues one serialized frame on one connection.
   * @param readGap reads messages missing from the live stream out of the store.
   * @param onMembership applies a membership change to this process. @default nothing to apply
   * @param crossing other processes publish too (a backplane): arrivals may cross.
   */
  constructor(
    private readonly registry: Registry,
    private readonly deliver: (conn: Conn, text: string) => void,
    readGap: GapReader,
    onError: (err: unknown) => void,
    private readonly onMembership: (change: MembershipChange) => void = () => undefined,
    crossing = false,
  ) {
    const interest = (topic: string) => this.count(topic) > 0;
    this.order = new TopicOrder((topic, text, offset) => this.fanout(topic, text, offset), readGap, interest, onError, crossing);
    registry.onInterest((kind, key, present) => {
      if (!present) this.order.untrack(kind === 'user' ? USER + key : key);
    });
  }

  publish(m: Outgoing): Promise<number> {
    return Promise.resolve(this.publishText(m.topic, frames.msgRaw(m.topic, m.dataJson, m.from, m.offset, m.ts), m.offset));
  }

  membership(change: MembershipChange): Promise<void> {
    this.onMembership(change);
    return Promise.resolve();
  }

  /** Fan out an already serialized frame; returns the local connections it is for. */
  publishText(topic: string, text: string, offset: number | null): number {
    if (offset === null) return this.fanout(topic, text, null);
    this.order.arrive(topic, offset, text);
    return this.count(topic);
  }

  /** Local connections a topic reaches. */
  count(topic: string): number {
    const t = targets(this.registry, topic);
    return t === undefined ? 0 : Array.isArray(t) ? t.length : (t as Set<Conn>).size;
  }

  private fanout(topic: string, text: string, offset: number | null): number {
    const conns = targets(this.registry, topic);
    if (!conns) return 0;
    // Copy first: a slow consumer dropped during delivery leaves the set mid-iteration.
    const list = Array.isArray(conns) ? conns : [...conns];
    const user = offset !== null && topic.startsWith(USER);
    for (const conn of list) {
      if (offset !== null && conn.skip !== null && skipped(conn, topic, offset)) continue;
      this.deliver(conn, text);
      if (user && conn.userFrom === 0) conn.userFrom = offset;
    }
    return list.length;
  }
}
