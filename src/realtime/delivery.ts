/**
 * Delivery v2 on the socket: what makes a durable topic's messages arrive (docs/protocol.md,
 * "Recovery"). A `pub` to a namespace with history is committed to the log before it is
 * fanned out and acknowledged with its offset; `sub` with `since` replays what the client
 * missed and hands over to live delivery with no gap and no repeat; `history` reads a range;
 * `recv` records how far a client has read (batched into the store, it cancels push
 * fallbacks).
 *
 * The hand-over: while a connection replays a topic, live messages of that topic skip it
 * (conn.skip = Infinity): they are in the store, and the replay reads on until it has passed
 * the last offset this process has delivered live. Then it marks the offset it reached, and
 * live messages up to it (still on their way here) are skipped as repeats. A replay is paced
 * by the socket's queue (under half of MAX_BUFFERED_BYTES), so it never trips the
 * slow-consumer drop. A user's own channel is the exception: it reaches every connection of
 * the user without a `sub`, so what it has delivered live before the `sub` is not replayed
 * again (conn.userFrom); only the older part is, after the live ones it already has.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channels } from './channels.js';
import { holds, type Conn } from './conn.js';
import type { Hub, LocalHub } from './hub.js';
import { frames, type Since } from './protocol.js';
import type { Registry } from './registry.js';

/** One page of a topic's log. */
export interface LogPage {
  entries: Array<{ offset: number; ts: number; data: string; from: string | null }>;
  /** The topic's newest offset (0 when it never had a message). */
  head: number;
  /** The oldest offset still kept (head + 1 when none is). */
  oldest: number;
  /** More entries follow this page. */
  more: boolean;
}

/** The durable log as the realtime core uses it (the store implements it). */
export interface HistoryLog {
  /** The store's epoch: changes only when the log is lost. */
  epoch(): Promise<string>;
  /** Commit one message (grouped with others into one transaction); resolves to its offset. */
  append(m: { topic: string; data: string; from: string | null; ts: number }): Promise<number>;
  /**
   * Commit once per (scope, key) within 24 h: a repeat with the same content answers the first
   * offset (`fresh: false`), other content answers 'conflict'.
   */
  appendOnce(scope: string, key: string, m: { topic: string; data: string; from: string | null; ts: number }): Promise<{ offset: number; fresh: boolean } | 'conflict'>;
  read(topic: string, after: number, limit: number, maxBytes: number): Promise<LogPage>;
  head(topic: string): Promise<number>;
}

/** Messages per page of a replay, and the bytes bound of one page or `history` answer. */
const PAGE = 100;
const PAGE_BYTES = 256 * 1024;
/** How often a paced replay looks at the socket's queue again. */
const DRAIN_POLL_MS = 10;

export interface DeliveryDeps {
  log: HistoryLog;
  channels: Channels;
  registry: Registry;
  local: LocalHub;
  hub: Hub;
  /** Queue one frame on a connection. */
  send(conn: Conn, text: string): void;
  /** Bytes queued on a connection's socket. */
  buffered(conn: Conn): number;
  maxBufferedBytes: number;
  /** Record a receipt (batched by the caller). */
  receipt(userId: string, topic: string, offset: number): void;
}

const USER = 'user:';
/** Empty reads a replay tries while live delivery is ahead of what the store showed it. */
const RACE_READS = 5;

function unskip(conn: Conn, topic: string): void {
  if (conn.skip?.delete(topic) && conn.skip.size === 0) conn.skip = null;
}

export class Delivery {
  constructor(private readonly d: DeliveryDeps) {}

  /** `sub` to a durable topic: answer the position, replaying after `since` when it can. */
  async subscribe(conn: Conn, topic: string, id: unknown, since: Since | undefined): Promise<void> {
    const { log, local } = this.d;
    const epoch = await log.epoch();
    if (conn.closing) return;
    if (since && this.d.channels.rules(topic)?.recover && since.epoch === epoch) {
      // A user's own channel may have been arriving live already (it needs no sub): then only
      // what came before the first live one is replayed. Otherwise, from here live messages of
      // the topic wait in the store for this connection, and the replay reads them in order.
      const liveFrom = topic.startsWith(USER) ? conn.userFrom : 0;
      if (liveFrom === 0) {
        this.join(conn, topic);
        (conn.skip ??= new Map()).set(topic, Infinity);
      }
      try {
        const page = await log.read(topic, since.offset, PAGE, PAGE_BYTES);
        if (since.offset <= page.head && since.offset >= page.oldest - 1) {
          this.d.send(conn, frames.ack('sub', topic, id, { offset: page.head, epoch, recovered: true }));
          if (liveFrom > 0) {
            await this.replayBefore(conn, topic, liveFrom, page);
            return;
          }
          local.order.startAt(topic, page.head);
          await this.replay(conn, topic, since.offset, page);
          return;
        }
      } finally {
        // Not recoverable, or the replay failed: live delivery resumes (never a muted topic).
        if (conn.skip?.get(topic) === Infinity) unskip(conn, topic);
      }
    }
    const head = local.order.last(topic) ?? (await log.head(topic));
    if (conn.closing) return;
    this.join(conn, topic);
    local.order.startAt(topic, head);
    const offset = local.order.last(topic) ?? head;
    this.d.send(conn, frames.ack('sub', topic, id, { offset, epoch, ...(since ? { recovered: false } : {}) }));
  }

  /** `history`: one page after `since`, without touching subscriptions. */
  async history(conn: Conn, topic: string, id: unknown, since: Since, limit: number): Promise<void> {
    const { log } = this.d;
    const epoch = await log.epoch();
    const page = since.epoch === epoch ? await log.read(topic, since.offset, limit, PAGE_BYTES) : null;
    const head = page?.head ?? (await log.head(topic));
    const recovered = page !== null && since.offset <= page.head && since.offset >= page.oldest - 1;
    const messages = recovered
      ? page.entries.map((e) => frames.entryRaw(e.data, e.from, e.offset, e.ts)).join(',')
      : '';
    const head2 = `{"op":"ack","id":${JSON.stringify(id ?? null)},"ack":"history","topic":${JSON.stringify(topic)}`;
    const tail = `"offset":${head},"epoch":${JSON.stringify(epoch)},"recovered":${recovered},"more":${recovered && page.more}}`;
    if (!conn.closing) this.d.send(conn, `${head2},"messages":[${messages}],${tail}`);
  }

  /**
   * `recv`: the client has everything of `topic` up to `offset`. Taken only for a topic this
   * connection holds, or the user's own channel; clamped to what this process delivered.
   */
  recv(conn: Conn, topic: string, offset: number): void {
    if (!holds(conn, topic) && topic !== USER + conn.userId) return;
    let delivered = this.d.local.order.last(topic);
    // A finished replay may have gone past the live stream here (committed elsewhere, its
    // fan-out still on the way): what it sent counts as delivered (conn.skip holds its end).
    const replayed = conn.skip?.get(topic);
    if (replayed !== undefined && replayed !== Infinity) delivered = Math.max(delivered ?? 0, replayed);
    this.d.receipt(conn.userId, topic, delivered === undefined ? offset : Math.min(offset, delivered));
  }

  /** A durable `pub`: committed, acknowledged with its offset, then fanned out. */
  async publish(conn: Conn, topic: string, data: unknown, id: unknown, key: string | undefined): Promise<void> {
    const m = { topic, data: JSON.stringify(data ?? null), from: conn.userId, ts: Date.now() };
    const r = key === undefined ? { offset: await this.d.log.append(m), fresh: true } : await this.d.log.appendOnce(`pub:${conn.userId}`, key, m);
    if (r === 'conflict') {
      this.d.send(conn, frames.error('idempotency_conflict', 'this key was used with other content', id));
      return;
    }
    this.d.send(conn, frames.ack('pub', topic, id, { offset: r.offset, epoch: await this.d.log.epoch() }));
    if (r.fresh) await this.d.hub.publish({ topic, dataJson: m.data, from: m.from, offset: r.offset, ts: m.ts });
  }

  private join(conn: Conn, topic: string): void {
    // A user's own channel reaches every connection of the user without a subscription.
    if (!topic.startsWith(USER)) this.d.registry.subscribe(conn, topic);
  }

  /**
   * Send the log after `after` until this connection has everything this process has
   * delivered live, then hand over: live messages up to the offset reached are repeats.
   */
  private async replay(conn: Conn, topic: string, after: number, first: LogPage): Promise<void> {
    let page = first;
    let cursor = after;
    // A read may come back empty while a message committed meanwhile is already live here:
    // read again, a few times at most (the store has it: it was committed before fan-out).
    for (let empty = 0; empty < RACE_READS; ) {
      for (const e of page.entries) {
        if (!(await this.paced(conn, topic))) return;
        this.d.send(conn, frames.msgRaw(topic, e.data, e.from, e.offset, e.ts));
        cursor = e.offset;
      }
      const live = this.d.local.order.last(topic) ?? 0;
      if (!page.more && live <= cursor) break;
      // Nothing left after the cursor although the head is past it: trimmed away.
      if (page.entries.length === 0 && page.head > cursor) break;
      if (page.entries.length === 0) empty++;
      page = await this.d.log.read(topic, cursor, PAGE, PAGE_BYTES);
    }
    if (conn.skip?.get(topic) === Infinity) conn.skip.set(topic, cursor);
  }

  /** Replay the entries before `end` (live delivery covers the rest), paced like replay(). */
  private async replayBefore(conn: Conn, topic: string, end: number, first: LogPage): Promise<void> {
    let page = first;
    for (;;) {
      let cursor = 0;
      for (const e of page.entries) {
        if (e.offset >= end) return;
        while (!conn.closing && this.d.buffered(conn) > this.d.maxBufferedBytes / 2) await sleep(DRAIN_POLL_MS);
        if (conn.closing) return;
        this.d.send(conn, frames.msgRaw(topic, e.data, e.from, e.offset, e.ts));
        cursor = e.offset;
      }
      if (!page.more || cursor === 0) return;
      page = await this.d.log.read(topic, cursor, PAGE, PAGE_BYTES);
    }
  }

  /** Wait until the socket's queue is under half its bound; false when the replay must stop. */
  private async paced(conn: Conn, topic: string): Promise<boolean> {
    while (!conn.closing && this.d.buffered(conn) > this.d.maxBufferedBytes / 2) await sleep(DRAIN_POLL_MS);
    return !conn.closing && conn.skip?.get(topic) === Infinity;
  }
}
