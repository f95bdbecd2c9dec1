/**
 * The tests' one wait: every wait has a deadline and says what it waited for, so a
 * regression shows as a message naming the missing event instead of a hang until the
 * runner's 10-minute test timeout.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** What a wait is for and how long it may take. */
export interface WaitOptions {
  /** Named in the timeout error: "timed out after 10000 ms waiting for <what>". */
  what: string;
  /** @default 10000 ms */
  timeoutMs?: number;
  /** Pause between attempts when polling. @default 20 ms */
  intervalMs?: number;
}

/**
 * Poll fn until its first truthy result, or await one promise (a close, an exit); reject
 * after timeoutMs saying what was awaited (and fn's last error, if it threw). An attempt
 * that itself never settles is cut off by the same deadline.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>>;
export async function eventually<T>(promise: Promise<T>, opts: WaitOptions): Promise<T>;
export async function eventually<T>(target: (() => T | Promise<T>) | Promise<T>, opts: WaitOptions): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let last: unknown;
  let expired: Error | undefined;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what}${last ? `; last error: ${String(last)}` : ''}`);
      reject(expired);
    }, timeoutMs);
  });
  void late.catch(() => undefined); // observed through the races below
  try {
    if (typeof target !== 'function') return await Promise.race([target, late]);
    for (;;) {
      try {
        const v = await Promise.race([target(), late]);
        if (v) return v;
        last = undefined;
      } catch (err) {
        if (expired) throw expired;
        last = err;
      }
      await Promise.race([delay(opts.intervalMs ?? 20), late]);
    }
  } finally {
    clearTimeout(timer);
  }
}
