/**
 * A named fixed-window rate limit over the box's `Limits` (in-process with WORKERS=1, the
 * supervisor's table with WORKERS>1), so the limit holds per box whichever worker serves.
 */
import type { Limits } from '../../lib/limits.js';
import { AppError } from '../../errors.js';

export class RateLimiter {
  /**
   * @param limits the box's counters.
   * @param name prefix of the keys, so limiters sharing the table do not mix.
   * @param limit hits per window.
   * @param windowMs window length in milliseconds.
   */
  constructor(
    private readonly limits: Limits,
    private readonly name: string,
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Count a hit for key; rejects with AppError 429 `rate_limited` and Retry-After when over the limit. */
  async hit(key: string): Promise<void> {
    const r = await this.limits.hit(`${this.name}:${key}`, this.limit, this.windowMs);
    if (!r.allowed) {
      throw new AppError('rate_limited', 'too many attempts, retry later', { headers: { 'Retry-After': String(r.retryAfterS) } });
    }
  }
}
