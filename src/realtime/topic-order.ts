/**
 * Per-topic delivery order on this process. Messages of a durable topic carry gapless
 * offsets, but those committed by different processes (or boxes) may cross on the
 * backplane. Each topic with local interest keeps the last offset delivered here: the next
 * one goes out at once, a repeat is dropped, and an early arrival is held briefly (HOLD_MS)
 * for the missing ones to come live; after that they are read from the store and delivered
 * first. The log commits offsets of one topic in order (the head row is locked until commit),
 * so a message that has arrived proves every smaller offset is already in the store. One
 * that is not there any more (trimmed) is skipped; clients see the jump in offsets.
 *
 * An entry is made when a topic with local connections gets its first message (or a
 * subscriber's starting point), and dropped when the last local connection goes: idle
 * connections cost nothing here, and the cost is one small object per active topic.
 */

/** How long an early arrival waits for the missing offsets before they are read from the store. */
export const HOLD_MS = 100;

interface Entry {
  /** The last offset delivered here; undefined until the first message sets it. */
  last: number | undefined;
  held: Map<number, string> | null;
  timer: ReturnType<typeof setTimeout> | null;
}

/** Reads missing messages: those with after < offset < before, as frames, ascending. */
export type GapReader = (topic: string, after: number, before: number) => Promise<Array<{ offset: number; text: string }>>;

export class TopicOrder {
  private readonly topics = new Map<string, Entry>();

  /**
   * @param deliver hands one frame of a topic, in order, to the local connections.
   * @param readGap reads missing messages from the store.
   */
  constructor(
    private readonly deliver: (topic: string, text: string, offset: number) => void,
    private readonly readGap: GapReader,
    private readonly hasInterest: (topic: string) => boolean,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** The topic's entry, made now if it has local connections. */
  private entry(topic: string): Entry | undefined {
    let e = this.topics.get(topic);
    if (!e && this.hasInterest(topic)) this.topics.set(topic, (e = { last: undefined, held: null, timer: null }));
    return e;
  }

  /** Stop tracking a topic that lost its last local connection. */
  untrack(topic: string): void {
    const e = this.topics.get(topic);
    if (!e) return;
    if (e.timer) clearTimeout(e.timer);
    this.topics.delete(topic);
  }

  /** The last offset delivered here, or undefined (untracked, or nothing seen yet). */
  last(topic: string): number | undefined {
    return this.topics.get(topic)?.last;
  }

  /**
   * Start a topic that has seen nothing yet at `offset` (its head when a subscriber joined):
   * messages at or below it are what that subscriber already has.
   */
  startAt(topic: string, offset: number): void {
    const e = this.entry(topic);
    if (e && e.last === undefined) e.last = offset;
  }

  /** A message arrives, from this process or another. */
  arrive(topic: string, offset: number, text: string): void {
    const e = this.entry(topic);
    if (!e) return;
    if (e.last === undefined || offset === e.last + 1) {
      this.emit(topic, e, offset, text);
      this.release(topic, e);
    } else if (offset > e.last) {
      (e.held ??= new Map()).set(offset, text);
      e.timer ??= setTimeout(() => void this.fill(topic, e), HOLD_MS);
    }
  }

  private emit(topic: string, e: Entry, offset: number, text: string): void {
    e.last = offset;
    this.deliver(topic, text, offset);
  }

  /** Deliver held messages that are next in line. */
  private release(topic: string, e: Entry): void {
    const held = e.held;
    if (!held) return;
    for (let text = held.get(e.last! + 1); text !== undefined; text = held.get(e.last! + 1)) {
      held.delete(e.last! + 1);
      this.emit(topic, e, e.last! + 1, text);
    }
    if (held.size === 0) {
      e.held = null;
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
    }
  }

  private async fill(topic: string, e: Entry): Promise<void> {
    e.timer = null;
    if (!e.held || this.topics.get(topic) !== e) return;
    const first = Math.min(...e.held.keys());
    try {
      for (const m of await this.readGap(topic, e.last!, first)) {
        if (this.topics.get(topic) !== e) return;
        if (m.offset > e.last! && m.offset < first) this.emit(topic, e, m.offset, m.text);
      }
    } catch (err) {
      this.onError(err);
    }
    if (this.topics.get(topic) !== e || !e.held) return;
    // Whatever is still missing is gone from the store (trimmed): go on from the first held.
    const next = Math.min(...e.held.keys());
    if (next > e.last! + 1) e.last = next - 1;
    this.release(topic, e);
  }
}
