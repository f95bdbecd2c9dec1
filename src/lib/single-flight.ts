/**
 * Single-flight lazy initialisation for shared async resources (provider tokens, keys):
 * concurrent first callers share one load; a failed load is not cached, so the next caller
 * tries again; a value inside `refreshMarginMs` of its expiry is reloaded once, shared by
 * every caller that asks meanwhile.
 */

export interface Expiring<T> {
  value: T;
  /** Epoch milliseconds after which the value must not be used; Infinity for never. */
  expiresAt: number;
}

export class SingleFlight<T> {
  private current: Expiring<T> | null = null;
  private pending: Promise<T> | null = null;

  /** @param refreshMarginMs reload this long before expiry. @default 60000 ms */
  constructor(
    private readonly load: () => Promise<Expiring<T>>,
    private readonly refreshMarginMs = 60_000,
  ) {}

  get(now = Date.now()): Promise<T> {
    const cur = this.current;
    if (cur && cur.expiresAt - this.refreshMarginMs > now) return Promise.resolve(cur.value);
    if (!this.pending) {
      this.pending = this.load().then(
        (r) => {
          this.current = r;
          this.pending = null;
          return r.value;
        },
        (err: unknown) => {
          this.pending = null;
          throw err;
        },
      );
    }
    return this.pending;
  }

  /** Drop the value (e.g. the provider rejected it); the next get() loads anew. */
  invalidate(): void {
    this.current = null;
  }
}
