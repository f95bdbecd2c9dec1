/**
 * Box-wide limits: the counters behind the login rate limit and the per-address WebSocket
 * limit. They must hold per box, not per process, so the gateway and the auth routes get
 * one `Limits` through their constructors:
 * - `LocalLimits` (local-limits.ts): in-process counters, for WORKERS=1, and the tables the
 *   supervisor keeps for every worker;
 * - `SupervisorLimits` (supervisor-limits.ts): a worker's client of those tables over the
 *   supervisor's IPC channel (WORKERS>1).
 */

/** The answer to one rate-limit hit. */
export interface HitResult {
  allowed: boolean;
  /** Seconds until the window resets (at least 1); meaningful when not allowed. */
  retryAfterS: number;
}

export interface Limits {
  /**
   * Count one hit for key in a fixed window of windowMs that starts with the key's first
   * hit; allowed while the window holds at most `limit` hits.
   */
  hit(key: string, limit: number, windowMs: number): Promise<HitResult>;
  /** Take one of `max` slots for key; false when all are taken (or the count is unknown). */
  acquire(key: string, max: number): Promise<boolean>;
  /** Give back a slot taken by acquire. */
  release(key: string): void;
}
