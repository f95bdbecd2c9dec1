/** Poll until a condition holds, with a deadline that names what was awaited. */
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Resolve with fn's first truthy result; reject after timeoutMs saying what was awaited.
 * @param opts.timeoutMs @default 10000 ms
 * @param opts.intervalMs pause between attempts. @default 20 ms
 */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  opts: { what: string; timeoutMs?: number; intervalMs?: number },
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${opts.what}${last ? `; last error: ${String(last)}` : ''}`);
    }
    await delay(opts.intervalMs ?? 20);
  }
}
