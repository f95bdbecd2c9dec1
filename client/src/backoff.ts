/**
 * Reconnect delays. Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"): attempt n waits uniformly in [0, min(cap, base × 2^n)), so a fleet
 * that lost its server at the same instant comes back spread over the window instead of in
 * one burst. Server hints override it: 1012 (restart) spreads over a short fixed window,
 * `retry=<s>` (1013 over capacity, rate limited) waits at least that long.
 */
import type { BackoffOptions } from './types.js';

export type ResolvedBackoff = Required<BackoffOptions>;

export const BACKOFF_DEFAULTS: ResolvedBackoff = {
  baseMs: 1000,
  capMs: 30_000,
  suspendAfterMs: 120_000,
  suspendedRetryMs: 60_000,
  restartSpreadMs: 2000,
};

/** Delay before attempt `attempt` (0 for the first retry) while `disconnected`. */
export function backoffDelay(b: ResolvedBackoff, attempt: number, random: () => number): number {
  const window = Math.min(b.capMs, b.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * window);
}

/** Delay of one attempt while `suspended`: in [0.5, 1] × suspendedRetryMs. */
export function suspendedDelay(b: ResolvedBackoff, random: () => number): number {
  return Math.floor(b.suspendedRetryMs * (0.5 + random() / 2));
}

/** Delay after a 1012 close: the server restarts for a deploy and another is (nearly) up. */
export function restartDelay(b: ResolvedBackoff, random: () => number): number {
  return Math.floor(random() * b.restartSpreadMs);
}

/** Delay when the server said `retry=<s>`: in [s, 2s] so that the retries spread too. */
export function hintedDelay(retryS: number, random: () => number): number {
  return Math.floor(retryS * 1000 * (1 + random()));
}

/** A close reason is `<error code>` optionally followed by ` retry=<integer seconds>`. */
export function parseCloseReason(reason: string): { code: string | undefined; retryS: number | undefined } {
  const m = /^([a-z_]+)?(?:\s+retry=(\d+))?\s*$/.exec(reason.trim());
  if (!m) return { code: undefined, retryS: undefined };
  return { code: m[1], retryS: m[2] === undefined ? undefined : Number(m[2]) };
}
