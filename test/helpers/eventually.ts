/**
 * Poll until a condition holds, with a deadline that names what was awaited: a regression
 * fails in seconds with a message, never hangs a run.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface EventuallyOptions {
  /** Give up after this long. @default 10000 ms */
  timeoutMs?: number;
  /** Pause between attempts. @default 50 ms */
  intervalMs?: number;
  /** What is awaited, for the failure message. */
  what: string;
}

/**
 * Call `fn` until it returns a value other than `undefined`/`false` (or stops throwing) and
 * return that value; after `timeoutMs` throw, quoting `what` and the last error.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: EventuallyOptions): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as Exclude<T, false | undefined>;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${opts.what}${why}`);
    }
    await delay(opts.intervalMs ?? 50);
  }
}
