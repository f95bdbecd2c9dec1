/** Poll until a condition holds, with a deadline that names what was awaited. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface EventuallyOptions {
  /** Give up after this long. @default 10000 ms */
  timeoutMs?: number;
  /** What is awaited, for the failure message. */
  what: string;
  /** Between attempts. @default 20 ms */
  intervalMs?: number;
}

/** Resolve with the first truthy result of `fn`; reject once `timeoutMs` has passed. */
export async function eventually<T>(fn: () => T | Promise<T>, o: EventuallyOptions): Promise<NonNullable<T>> {
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${o.timeoutMs ?? 10_000} ms waiting for ${o.what}`);
    await sleep(o.intervalMs ?? 20);
  }
}
