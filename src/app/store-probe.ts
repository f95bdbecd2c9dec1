/**
 * Readiness of the store, for `/readyz`. Probes may come every second from several
 * balancers, so one ping answers every probe for `CACHE_MS`, and at most one ping is in
 * flight: a ping that hangs (a blackholed PostgreSQL) is not joined by more of them holding
 * pool connections; each probe waits for it only until its deadline, measured from when
 * the ping started, and then counts the store as unreachable. Transitions are logged once.
 */

import type { Logger } from '../observability/logger.js';

/** How long one ping's answer serves later probes. */
const CACHE_MS = 1000;
/**
 * A ping still unanswered after this many deadlines is abandoned and a fresh one starts: a
 * query on a connection that a partition left half-open may never settle, and readiness
 * must come back once the store does. At most one ping is abandoned per this period.
 */
const ABANDON_AFTER_DEADLINES = 10;

export class StoreProbe {
  private ok = true;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<boolean> | null = null;
  private startedAt = 0;

  /**
   * @param ping one round trip to the store; rejects when it is unreachable.
   * @param timeoutMs how long a ping may take before the store counts as unreachable. @default 1000 ms (READY_STORE_TIMEOUT_MS)
   */
  constructor(
    private readonly ping: () => Promise<unknown>,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** True when the store answered a ping within the deadline, at most CACHE_MS ago. */
  async reachable(): Promise<boolean> {
    const now = Date.now();
    if (now - this.checkedAt < CACHE_MS) return this.ok;
    if (!this.pending || now - this.startedAt > this.timeoutMs * ABANDON_AFTER_DEADLINES) {
      this.startedAt = now;
      const p: Promise<boolean> = this.ping().then(
        () => this.settle(p, true),
        () => this.settle(p, false),
      );
      this.pending = p;
    }
    const left = this.startedAt + this.timeoutMs - now;
    if (left <= 0) return this.record(false);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), left);
    });
    try {
      const ok = await Promise.race([this.pending, late]);
      if (!ok) this.record(false);
      return ok;
    } finally {
      clearTimeout(timer);
    }
  }

  private settle(p: Promise<boolean>, ok: boolean): boolean {
    // An abandoned ping that settles late says nothing about the store now.
    if (this.pending !== p) return ok;
    this.pending = null;
    return this.record(ok);
  }

  private record(ok: boolean): boolean {
    // Transitions only: a balancer probing every second must not fill the log.
    if (ok !== this.ok) {
      if (ok) this.log.info('store reachable again: ready');
      else this.log.warn({ timeoutMs: this.timeoutMs }, 'store unreachable: /readyz answers 503');
    }
    this.ok = ok;
    this.checkedAt = Date.now();
    return ok;
  }
}
