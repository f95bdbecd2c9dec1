/**
 * Receipts are cumulative ("I have everything of this topic up to N"), so only the highest
 * per user and topic matters: frames update a map, and one timer writes the map to the store
 * at most every `flushMs`. The store never sees one write per frame, and a burst of `recv`s
 * from 50K clients becomes one transaction.
 */
export interface Receipt {
  userId: string;
  topic: string;
  offset: number;
}

export class ReceiptBatcher {
  private pending = new Map<string, Receipt>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> | null = null;

  /**
   * @param write stores one batch (one transaction).
   * @param flushMs longest a receipt waits before it is written. @default 250 ms
   */
  constructor(
    private readonly write: (batch: Receipt[]) => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly flushMs = 250,
  ) {}

  add(userId: string, topic: string, offset: number): void {
    const key = `${userId}\n${topic}`;
    const cur = this.pending.get(key);
    if (cur && cur.offset >= offset) return;
    this.pending.set(key, { userId, topic, offset });
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Write what is pending now (shutdown, tests); resolves once all of it is written or failed. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Another flush may be writing: wait for it, then write what came meanwhile.
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = this.write(batch)
      .catch((err: unknown) => {
        this.onError(err);
        // Keep them for the next flush, unless newer ones came meanwhile.
        for (const r of batch) this.add(r.userId, r.topic, r.offset);
      })
      .finally(() => (this.flushing = null));
    await this.flushing;
  }
}
