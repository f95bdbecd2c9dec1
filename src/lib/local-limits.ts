/**
 * In-process limit tables. Rate windows are swept lazily (at most once per sweep period,
 * on a hit), so there is no timer and the map stays bounded by the keys seen in a window.
 * Slots are counted per owner: the supervisor owns one table for the box and gives each
 * worker's pid as the owner, so the slots of a worker that dies are released at once.
 */
import type { HitResult, Limits } from './limits.js';

/** The owner when the process keeps its own slots (WORKERS=1). */
const SELF = 0;

export class LocalLimits implements Limits {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly slots = new Map<string, number>();
  private readonly byOwner = new Map<number, Map<string, number>>();
  private nextSweep = 0;

  /** @param sweepEveryMs how often expired windows are dropped. @default 60000 ms */
  constructor(private readonly sweepEveryMs = 60_000) {}

  hit(key: string, limit: number, windowMs: number): Promise<HitResult> {
    return Promise.resolve(this.hitNow(key, limit, windowMs));
  }

  /** The synchronous hit (the supervisor answers from it). */
  hitNow(key: string, limit: number, windowMs: number, now = Date.now()): HitResult {
    if (now >= this.nextSweep) this.sweep(now);
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return { allowed: w.count <= limit, retryAfterS: Math.max(1, Math.ceil((w.resetAt - now) / 1000)) };
  }

  acquire(key: string, max: number): Promise<boolean> {
    return Promise.resolve(this.acquireFor(SELF, key, max));
  }

  release(key: string): void {
    this.releaseFor(SELF, key);
  }

  /** Take a slot for owner; false when `max` are taken box-wide. */
  acquireFor(owner: number, key: string, max: number): boolean {
    const n = this.slots.get(key) ?? 0;
    if (n >= max) return false;
    this.slots.set(key, n + 1);
    let mine = this.byOwner.get(owner);
    if (!mine) this.byOwner.set(owner, (mine = new Map()));
    mine.set(key, (mine.get(key) ?? 0) + 1);
    return true;
  }

  /** Give back one of owner's slots for key; a release owner does not hold is ignored. */
  releaseFor(owner: number, key: string): void {
    const mine = this.byOwner.get(owner);
    const held = mine?.get(key) ?? 0;
    if (held === 0) return;
    if (held === 1) mine!.delete(key);
    else mine!.set(key, held - 1);
    if (mine!.size === 0) this.byOwner.delete(owner);
    this.drop(key, 1);
  }

  /** Release every slot owner holds (its process exited). @returns how many. */
  releaseOwner(owner: number): number {
    const mine = this.byOwner.get(owner);
    if (!mine) return 0;
    this.byOwner.delete(owner);
    let total = 0;
    for (const [key, n] of mine) {
      this.drop(key, n);
      total += n;
    }
    return total;
  }

  /** Slots taken for key box-wide. */
  held(key: string): number {
    return this.slots.get(key) ?? 0;
  }

  private drop(key: string, n: number): void {
    const left = (this.slots.get(key) ?? 0) - n;
    if (left <= 0) this.slots.delete(key);
    else this.slots.set(key, left);
  }

  private sweep(now: number): void {
    this.nextSweep = now + this.sweepEveryMs;
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
  }
}
