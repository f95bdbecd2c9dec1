/**
 * One topic's delivery order: each message reaches the app once, in offset order. Messages
 * ahead of the next expected offset wait in `pending` until the missing ones arrive (the
 * replay after a `sub … since`, or a `history` read the client makes when the gap stays);
 * offsets at or below the last delivered one are repeats and are dropped. Pure logic: the
 * client feeds it frames and calls the handlers with what it returns.
 */
import type { Message } from './types.js';
import type { Position } from './storage.js';

export class TopicOrder {
  /** The last offset delivered to the app, and its epoch; undefined until the first ack. */
  position: Position | undefined;
  private readonly pending = new Map<number, Message>();
  /** After an ack with recovered:true, the head the replay goes up to. */
  private replayTo: number | undefined;
  private replayFrom = 0;

  constructor(position?: Position) {
    this.position = position;
  }

  /** A message arrived (live, replayed or read by history): the ones to deliver now, in order. */
  accept(m: Message): Message[] {
    if (m.offset === undefined) return [m];
    if (this.position === undefined || m.offset > this.position.offset + 1) {
      if (this.position === undefined || m.offset > this.position.offset) this.pending.set(m.offset, m);
      return [];
    }
    if (m.offset <= this.position.offset) return [];
    this.position = { ...this.position, offset: m.offset };
    return [m, ...this.drain()];
  }

  /**
   * The server answered `sub`. Returns the messages to deliver now, and whether the topic
   * recovered (nothing missed) or has a gap the app must reload over REST.
   */
  ack(a: { offset?: number; epoch?: string; recovered?: boolean }, sentSince: boolean): { deliver: Message[]; gap?: { since: number | undefined } } {
    if (a.offset === undefined || a.epoch === undefined) {
      // No history in this namespace: nothing to order.
      return { deliver: this.takeAll() };
    }
    if (sentSince && a.recovered === true && this.position !== undefined) {
      this.replayFrom = this.position.offset;
      this.replayTo = a.offset;
      return { deliver: [] };
    }
    const since = this.position?.offset;
    // A fresh subscription starts at the head; one whose position the server cannot resume
    // (recovered:false) continues there too. Messages that came live before this ack are
    // delivered, in order, whatever their offset.
    const deliver = this.takeAll();
    const last = deliver.length ? deliver[deliver.length - 1]!.offset! : 0;
    this.position = { offset: Math.max(a.offset, last), epoch: a.epoch };
    this.replayTo = undefined;
    return sentSince ? { deliver, gap: { since } } : { deliver };
  }

  /** After an ack with recovered:true: the replay has reached the head the ack named (once). */
  caughtUp(): { since: number; offset: number } | undefined {
    if (this.replayTo === undefined || this.position === undefined || this.position.offset < this.replayTo) return undefined;
    const done = { since: this.replayFrom, offset: this.replayTo };
    this.replayTo = undefined;
    return done;
  }

  /** True while messages wait for lower offsets that have not arrived. */
  hasGap(): boolean {
    return this.pending.size > 0;
  }

  /** True while a replay the server promised is still coming (do not read history meanwhile). */
  replaying(): boolean {
    return this.replayTo !== undefined;
  }

  /** The first offset that waits, for a gap the server cannot fill. */
  firstPending(): number | undefined {
    return this.pending.size ? Math.min(...this.pending.keys()) : undefined;
  }

  /** Give up on the missing offsets (the log no longer has them): deliver what waits, in order. */
  skipGap(): { deliver: Message[]; since: number | undefined; offset: number } {
    const since = this.position?.offset;
    const first = this.firstPending() ?? since ?? 0;
    if (this.position) this.position = { ...this.position, offset: first - 1 };
    const deliver = this.takeAll();
    if (this.position && deliver.length) this.position = { ...this.position, offset: deliver[deliver.length - 1]!.offset! };
    return { deliver, since, offset: first - 1 };
  }

  /** Forget the connection's transient state (pending messages stay: they are real). */
  reset(): void {
    this.replayTo = undefined;
  }

  private drain(): Message[] {
    const out: Message[] = [];
    for (;;) {
      const next = this.pending.get(this.position!.offset + 1);
      if (!next) break;
      this.pending.delete(next.offset!);
      this.position = { ...this.position!, offset: next.offset! };
      out.push(next);
    }
    for (const o of this.pending.keys()) if (o <= this.position!.offset) this.pending.delete(o);
    return out;
  }

  private takeAll(): Message[] {
    const all = [...this.pending.values()].sort((a, b) => a.offset! - b.offset!);
    this.pending.clear();
    return all;
  }
}
