/**
 * One timer for every connection's keep-alive, after undici's timer wheel.
 *
 * Pings: connections are dealt round-robin into B buckets; each tick (interval / B) pings one
 * bucket, so a ping interval sends N pings spread evenly over it, never N at once.
 *
 * Idle: connections also sit in an intrusive list ordered by last activity (`touch` moves a
 * connection to the tail in O(1)). Each tick terminates from the head every connection
 * silent longer than the idle timeout, so a vanished peer is gone within one tick of it,
 * without a timer per connection or a scan of all of them.
 */
import type { Conn } from './conn.js';

export interface HeartbeatHooks {
  /** Ping time for conn (once per interval); `now` is the tick's time. */
  ping(conn: Conn, now: number): void;
  idle(conn: Conn): void;
  /** Runs once per tick, after the idle sweep. */
  tick(now: number): void;
}

export class Heartbeat {
  private readonly buckets: Set<Conn>[];
  private nextBucket = 0;
  private cursor = 0;
  private head: Conn | null = null;
  private tail: Conn | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  readonly tickMs: number;

  /** @param intervalMs ping interval. @param idleMs idle timeout, both in milliseconds. */
  constructor(intervalMs: number, private readonly idleMs: number, private readonly hooks: HeartbeatHooks) {
    const count = Math.min(120, Math.max(1, Math.floor(intervalMs / 25)));
    this.buckets = Array.from({ length: count }, () => new Set<Conn>());
    this.tickMs = intervalMs / count;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(Date.now()), this.tickMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  add(conn: Conn, now: number): void {
    conn.bucket = this.nextBucket;
    this.nextBucket = (this.nextBucket + 1) % this.buckets.length;
    this.buckets[conn.bucket]!.add(conn);
    conn.lastSeen = now;
    this.append(conn);
  }

  remove(conn: Conn): void {
    if (conn.bucket < 0) return;
    this.buckets[conn.bucket]!.delete(conn);
    conn.bucket = -1;
    this.unlink(conn);
  }

  /** Record activity: the connection moves to the tail of the idle list. */
  touch(conn: Conn, now: number): void {
    conn.lastSeen = now;
    if (conn.bucket < 0 || this.tail === conn) return;
    this.unlink(conn);
    this.append(conn);
  }

  tick(now: number): void {
    const bucket = this.buckets[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.buckets.length;
    const deadline = now - this.idleMs;
    while (this.head && this.head.lastSeen < deadline) {
      const conn = this.head;
      this.remove(conn);
      this.hooks.idle(conn);
    }
    for (const conn of bucket) this.hooks.ping(conn, now);
    this.hooks.tick(now);
  }

  private append(conn: Conn): void {
    conn.prev = this.tail;
    conn.next = null;
    if (this.tail) this.tail.next = conn;
    else this.head = conn;
    this.tail = conn;
  }

  private unlink(conn: Conn): void {
    if (conn.prev) conn.prev.next = conn.next;
    else if (this.head === conn) this.head = conn.next;
    if (conn.next) conn.next.prev = conn.prev;
    else if (this.tail === conn) this.tail = conn.prev;
    conn.prev = conn.next = null;
  }
}
