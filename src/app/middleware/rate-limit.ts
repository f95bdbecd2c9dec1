/**
 * Fixed-window counters per key (client address, email). One unref'd timer sweeps expired
 * windows, so the map stays bounded by the number of keys seen in one window.
 */
import { AppError } from '../errors.js';

export class RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly timer: ReturnType<typeof setInterval>;

  /** @param limit hits per window. @param windowMs window length in milliseconds. */
  constructor(private readonly limit: number, private readonly windowMs: number) {
    this.timer = setInterval(() => this.sweep(), windowMs);
    this.timer.unref?.();
  }

  /** Count a hit for key; throws AppError 429 with Retry-After when over the limit. */
  hit(key: string, now = Date.now()): void {
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + this.windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    if (w.count > this.limit) {
      const retry = Math.max(1, Math.ceil((w.resetAt - now) / 1000));
      throw new AppError('rate_limited', 'too many attempts, retry later', { headers: { 'Retry-After': String(retry) } });
    }
  }

  private sweep(now = Date.now()): void {
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
