/**
 * The subscribed topics: their `sub` on each new connection (with `since` from the stored
 * position, the user channel first), delivery to the handlers through each topic's order
 * (topic.ts), gaps filled with `history`, and the batched work after the handlers ran:
 * cumulative receipts for `user:` topics and saved positions.
 */
import { OneboxError } from './errors.js';
import type { Frame, Link } from './link.js';
import type { Requests } from './requests.js';
import { loadPosition } from './storage.js';
import { Subscription } from './subscription.js';
import { TopicOrder } from './topic.js';
import type { Clock, Message, StorageAdapter, SubscribeOptions } from './types.js';

interface Topic {
  name: string;
  subs: Set<Subscription<any>>;
  order: TopicOrder;
  recover: boolean;
  token: string | undefined;
  isLoaded: boolean;
  /** The `sub` of this topic on the current connection: its id, and whether it carried `since`. */
  subId?: string;
  sentSince: boolean;
  acked: boolean;
  gapTimer?: unknown;
  historyInFlight: boolean;
  /** Receipts (user channel): the highest offset handled, and the highest sent on this connection. */
  recvDue: number;
  recvSent: number;
  saveDue: boolean;
}

export interface TopicsDeps {
  clock: Clock;
  storage: StorageAdapter;
  prefix: string;
  timeouts: { flush: number; gapFill: number; request: number };
  requests: Requests;
  /** The current connection, if any. */
  link(): Link | undefined;
  /** The first batch of `sub` frames on this link is answered. */
  onReady(link: Link): void;
  emitError(err: OneboxError): void;
  /** Paused or closed: no flush timer is started. */
  idle(): boolean;
}

export class Topics {
  private readonly topics = new Map<string, Topic>();
  private readonly pendingSaves = new Set<Topic>();
  private flushTimer: unknown;
  private seq = 0;

  constructor(private readonly deps: TopicsDeps) {}

  subscribe<T>(topic: string, onMessage: (msg: Message<T>) => void, options: SubscribeOptions): Subscription<T> {
    const sub = new Subscription<T>(topic, onMessage, (s) => this.remove(s));
    const existing = this.topics.get(topic);
    if (existing) {
      existing.subs.add(sub);
      if (options.token !== undefined) existing.token = options.token;
      return sub;
    }
    const recover = options.recover ?? true;
    const t: Topic = {
      name: topic,
      subs: new Set([sub]),
      order: new TopicOrder(),
      recover,
      token: options.token,
      isLoaded: !recover,
      sentSince: false,
      acked: false,
      historyInFlight: false,
      recvDue: 0,
      recvSent: 0,
      saveDue: false,
    };
    this.topics.set(topic, t);
    if (!recover) {
      this.sendSub(t);
      return sub;
    }
    void loadPosition(this.deps.storage, this.key(topic))
      .catch((err: unknown) => this.deps.emitError(new OneboxError('storage_failed', `reading the position of ${topic}: ${String(err)}`, topic)))
      .then((p) => {
        if (p && t.order.position === undefined) t.order.position = p;
        t.isLoaded = true;
        if (this.topics.get(topic) === t) this.sendSub(t);
      });
    return sub;
  }

  /** A socket opened: subscribe every topic, the user channel first (its live messages then wait for the replay). */
  onOpen(link: Link): void {
    const all = [...this.topics.values()].sort((a, b) => Number(b.name.startsWith('user:')) - Number(a.name.startsWith('user:')));
    for (const t of all) this.sendSub(t);
    this.checkReady(link);
  }

  /** An answer to one of our `sub` frames (ids `s…`). */
  isSubId(id: unknown): boolean {
    return typeof id === 'string' && id.startsWith('s');
  }

  onSubAck(link: Link, f: Frame): void {
    const t = this.topicOfSub(f.id);
    link.subsInFlight = Math.max(0, link.subsInFlight - 1);
    if (t) {
      t.acked = true;
      const head = { topic: t.name, ...(typeof f.offset === 'number' ? { offset: f.offset } : {}), ...(typeof f.epoch === 'string' ? { epoch: f.epoch } : {}) };
      for (const s of t.subs) s.fire('subscribed', head);
      const { deliver, gap } = t.order.ack(f, t.sentSince);
      if (gap) for (const s of t.subs) s.fire('gap', { topic: t.name, since: gap.since, offset: f.offset, epoch: f.epoch });
      this.deliver(t, deliver);
      this.afterDelivery(t);
      if (t.order.position && !t.sentSince) this.markSave(t);
    }
    this.checkReady(link);
  }

  onSubError(link: Link, f: Frame): void {
    const t = this.topicOfSub(f.id);
    link.subsInFlight = Math.max(0, link.subsInFlight - 1);
    if (t) this.drop(t, new OneboxError(String(f.code), String(f.message ?? f.code), t.name));
    this.checkReady(link);
  }

  /** `membership_revoked` (an error without id, with a topic): nothing more of it comes. */
  onRevoked(f: Frame): void {
    const t = this.topics.get(f.topic);
    if (t) this.drop(t, new OneboxError(String(f.code), String(f.message ?? f.code), t.name));
  }

  onMsg(f: Frame): void {
    const t = this.topics.get(f.topic);
    if (!t) return;
    const m: Message = { topic: f.topic, data: f.data, ts: f.ts };
    if (typeof f.offset === 'number') m.offset = f.offset;
    if (typeof f.from === 'string') m.from = f.from;
    this.deliver(t, t.order.accept(m));
    this.afterDelivery(t);
  }

  onPresence(f: Frame): void {
    const t = this.topics.get(f.topic);
    if (!t) return;
    const ev = {
      topic: f.topic as string,
      ...(typeof f.join === 'string' ? { join: f.join } : {}),
      ...(typeof f.leave === 'string' ? { leave: f.leave } : {}),
      ...(typeof f.count === 'number' ? { count: f.count } : {}),
    };
    for (const s of t.subs) s.fire('presence', ev);
  }

  /** The connection is gone: what belonged to it (sub ids, gap reads, receipts sent) is forgotten. */
  linkLost(): void {
    for (const t of this.topics.values()) {
      if (t.gapTimer !== undefined) this.deps.clock.clearTimeout(t.gapTimer);
      t.gapTimer = undefined;
      t.subId = undefined;
      t.acked = false;
      t.historyInFlight = false;
      t.recvSent = 0;
      t.order.reset();
    }
  }

  /** Send the receipts due (cumulative, per user-channel topic) and save the positions due. */
  flush(): void {
    this.stopFlushTimer();
    const link = this.deps.link();
    for (const t of this.topics.values()) {
      if (link?.hello && t.recvDue > t.recvSent) {
        t.recvSent = t.recvDue;
        link.send({ op: 'recv', topic: t.name, offset: t.recvDue });
      }
    }
    for (const t of this.pendingSaves) this.saveNow(t);
    this.pendingSaves.clear();
  }

  stopFlushTimer(): void {
    if (this.flushTimer !== undefined) this.deps.clock.clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private key(topic: string): string {
    return `${this.deps.prefix}:pos:${topic}`;
  }

  private sendSub(t: Topic): void {
    const link = this.deps.link();
    if (!link?.open || !t.isLoaded || t.subId !== undefined) return;
    t.subId = `s${++this.seq}`;
    t.acked = false;
    const p = t.recover ? t.order.position : undefined;
    t.sentSince = p !== undefined;
    link.subsInFlight++;
    link.send({ op: 'sub', id: t.subId, topic: t.name, ...(p ? { since: { offset: p.offset, epoch: p.epoch } } : {}), ...(t.token ? { token: t.token } : {}) });
  }

  private checkReady(link: Link): void {
    if (link.ready || link.subsInFlight > 0 || this.deps.link() !== link) return;
    link.ready = true;
    this.deps.onReady(link);
  }

  private topicOfSub(id: unknown): Topic | undefined {
    for (const t of this.topics.values()) if (t.subId === id) return t;
    return undefined;
  }

  /** The server refused or revoked the topic: its subscriptions end with an `error` event. */
  private drop(t: Topic, err: OneboxError): void {
    this.topics.delete(t.name);
    if (t.gapTimer !== undefined) this.deps.clock.clearTimeout(t.gapTimer);
    for (const s of t.subs) {
      s.active = false;
      s.fire('error', err);
    }
  }

  private remove(s: Subscription<any>): void {
    const t = this.topics.get(s.topic);
    if (!t || !t.subs.delete(s) || t.subs.size > 0) return;
    this.topics.delete(t.name);
    if (t.gapTimer !== undefined) this.deps.clock.clearTimeout(t.gapTimer);
    this.saveNow(t);
    const link = this.deps.link();
    if (link?.open && t.subId !== undefined) link.send({ op: 'unsub', id: `u${++this.seq}`, topic: t.name });
  }

  private deliver(t: Topic, messages: Message[]): void {
    for (const m of messages) {
      for (const s of t.subs) {
        try {
          s.handler(m);
        } catch (err) {
          s.fire('error', new OneboxError('handler_failed', `the message handler threw: ${String(err)}`, t.name));
        }
      }
      if (m.offset === undefined) continue;
      if (t.name.startsWith('user:')) {
        t.recvDue = Math.max(t.recvDue, m.offset);
        this.scheduleFlush();
      }
      this.markSave(t);
    }
  }

  /** After messages were handled: the `recovered` event, and a gap the server does not fill. */
  private afterDelivery(t: Topic): void {
    const done = t.order.caughtUp();
    if (done) for (const s of t.subs) s.fire('recovered', { topic: t.name, ...done });
    if (t.order.hasGap() && t.acked && t.gapTimer === undefined && !t.historyInFlight) {
      t.gapTimer = this.deps.clock.setTimeout(() => {
        t.gapTimer = undefined;
        void this.fillGap(t);
      }, this.deps.timeouts.gapFill);
    }
  }

  /** Read the missing offsets with `history`, page by page; what the log no longer has is a gap. */
  private async fillGap(t: Topic): Promise<void> {
    if (!t.order.hasGap() || this.topics.get(t.name) !== t) return;
    if (t.order.replaying()) return this.afterDelivery(t);
    const p = t.order.position!;
    t.historyInFlight = true;
    let ack: Frame;
    try {
      const since = { offset: p.offset, epoch: p.epoch };
      ack = await this.deps.requests.send({ op: 'history', topic: t.name, since, limit: 100, ...(t.token ? { token: t.token } : {}) }, this.deps.timeouts.request, false);
    } catch {
      t.historyInFlight = false;
      return; // the connection went; the next one resubscribes with since
    }
    t.historyInFlight = false;
    if (this.topics.get(t.name) !== t) return;
    if (ack.recovered !== false) {
      for (const e of (ack.messages ?? []) as Frame[]) {
        this.deliver(t, t.order.accept({ topic: t.name, offset: e.offset, data: e.data, ts: e.ts, ...(typeof e.from === 'string' ? { from: e.from } : {}) }));
      }
    }
    // A page that brought nothing new cannot be followed by a better one: give the gap up.
    const stuck = t.order.position!.offset === p.offset;
    if (t.order.hasGap() && (ack.recovered === false || ack.more !== true || stuck)) {
      const skipped = t.order.skipGap();
      for (const s of t.subs) s.fire('gap', { topic: t.name, since: skipped.since, offset: skipped.offset, epoch: p.epoch });
      this.deliver(t, skipped.deliver);
    }
    if (t.order.hasGap()) return this.fillGap(t);
    this.afterDelivery(t);
  }

  private markSave(t: Topic): void {
    if (!t.recover) return;
    t.saveDue = true;
    this.pendingSaves.add(t);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.deps.idle()) return;
    this.flushTimer = this.deps.clock.setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, this.deps.timeouts.flush);
  }

  private saveNow(t: Topic): void {
    if (!t.saveDue || !t.order.position) return;
    t.saveDue = false;
    const fail = (err: unknown) => this.deps.emitError(new OneboxError('storage_failed', `saving the position of ${t.name}: ${String(err)}`, t.name));
    try {
      void Promise.resolve(this.deps.storage.setItem(this.key(t.name), JSON.stringify(t.order.position))).catch(fail);
    } catch (err) {
      fail(err);
    }
  }
}
