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
/** Longest wait between two tries of a gap fill the store could not answer. */
const RETRY_MAX_MS = 5000;
/** Messages read per store query while filling a gap. */
const FILL_PAGE = 1000;
/**
 * Early arrivals held per topic at most: past it (a store down for long under traffic) the
 * gap is given up and delivery goes on from the held ones, so memory stays bounded.
 */
const HELD_MAX = 10_000;

interface Entry {
  /** The last offset delivered here; undefined until the first message sets it. */
  last: number | undefined;
  held: Map<number, string> | null;
  timer: ReturnType<typeof setTimeout> | null;
  /** Failed fills in a row (backoff). */
  failures: number;
}

/**
 * Reads missing messages: those with after < offset < before, at most `limit`, as frames,
 * ascending.
 */
export type GapReader = (topic: string, after: number, before: number, limit: number) => Promise<Array<{ offset: number; text: string }>>;

/** The smallest key of a non-empty map (no spread: a held map may be large). */
function firstKey(held: Map<number, string>): number {
  let min = Infinity;
  for (const k of held.keys()) if (k < min) min = k;
  return min;
}

export class TopicOrder {
  private readonly topics = new Map<string, Entry>();

  /**
   * @param deliver hands one frame of a topic, in order, to the local connections.
   * @param readGap reads missing messages from the store.
   * @param hasInterest whether the topic has local connections.
   * @param holdFirst hold even the first arrival of a topic briefly: with other processes
   *   publishing (a backplane), the first two messages may cross, and delivering the later
   *   one first would make the earlier a repeat.
   */
  constructor(
    private readonly deliver: (topic: string, text: string, offset: number) => void,
    private readonly readGap: GapReader,
    private readonly hasInterest: (topic: string) => boolean,
    private readonly onError: (err: unknown) => void,
    private readonly holdFirst = false,
  ) {}

  /** The topic's entry, made now if it has local connections. */
  private entry(topic: string): Entry | undefined {
    let e = this.topics.get(topic);
    if (!e && this.hasInterest(topic)) this.topics.set(topic, (e = { last: undefined, held: null, timer: null, failures: 0 }));
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
    if (e && e.last === undefined) {
      e.last = offset;
      this.release(topic, e);
    }
  }

  /** A message arrives, from this process or another. */
  arrive(topic: string, offset: number, text: string): void {
    const e = this.entry(topic);
    if (!e) return;
    if (e.last === undefined ? !this.holdFirst : offset === e.last + 1) {
      this.emit(topic, e, offset, text);
      this.release(topic, e);
    } else if (e.last === undefined || offset > e.last) {
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
    if (!held || e.last === undefined) return;
    for (const k of held.keys()) if (k <= e.last) held.delete(k);
    for (let text = held.get(e.last + 1); text !== undefined; text = held.get(e.last + 1)) {
      held.delete(e.last + 1);
      this.emit(topic, e, e.last + 1, text);
    }
    if (held.size === 0) {
      e.held = null;
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
      e.failures = 0;
    }
  }

  /** The hold is over: read what is missing from the store, then deliver the held ones. */
  private async fill(topic: string, e: Entry): Promise<void> {
    e.timer = null;
    if (!e.held || this.topics.get(topic) !== e) return;
    // A topic's first messages: it starts at the first one held.
    if (e.last === undefined) e.last = firstKey(e.held) - 1;
    try {
      for (;;) {
        if (!e.held || this.topics.get(topic) !== e) return;
        const first = firstKey(e.held);
        if (first <= e.last + 1) break;
        const page = await this.readGap(topic, e.last, first, FILL_PAGE);
        if (this.topics.get(topic) !== e) return;
        for (const m of page) if (m.offset === e.last + 1) this.emit(topic, e, m.offset, m.text);
        this.release(topic, e);
        if (page.length < FILL_PAGE) break;
      }
    } catch (err) {
      // The store did not answer: keep holding (unless too much), and try again later.
      this.onError(err);
      if (e.held && e.held.size <= HELD_MAX && this.topics.get(topic) === e) {
        e.failures++;
        e.timer = setTimeout(() => void this.fill(topic, e), Math.min(RETRY_MAX_MS, HOLD_MS * 2 ** e.failures));
        return;
      }
    }
    if (!e.held || this.topics.get(topic) !== e) return;
    // Whatever is still missing is gone from the store (trimmed): go on from the first held.
    e.last = Math.max(e.last, firstKey(e.held) - 1);
    this.release(topic, e);
  }
}
