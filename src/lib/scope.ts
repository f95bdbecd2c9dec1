/**
 * A small structured-concurrency primitive over AbortController: run several tasks
 * concurrently inside one scope bound to a parent signal (the request's) and a deadline.
 * When the parent aborts (client gone), the deadline passes, or any task fails, the scope's
 * signal aborts so every other task can stop, and `scoped` still waits for all of them to
 * settle before it returns: nothing started inside the scope outlives it.
 */

export class DeadlineError extends Error {
  override name = 'DeadlineError';
  constructor(readonly timeoutMs: number) {
    super(`deadline of ${timeoutMs} ms passed`);
  }
}

export class CancelledError extends Error {
  override name = 'CancelledError';
}

export interface ScopeOptions {
  /** Aborting this cancels the scope (e.g. the client went away). */
  signal?: AbortSignal | undefined;
  /** Cancel the scope after this many milliseconds. */
  timeoutMs?: number | undefined;
}

type Tasks<T extends readonly unknown[]> = { [K in keyof T]: (signal: AbortSignal) => Promise<T[K]> };

/**
 * Run `tasks` concurrently; resolve with their results in order, or reject with the first
 * cause (DeadlineError, CancelledError, or the first task's error) after all have settled.
 */
export async function scoped<T extends readonly unknown[]>(opts: ScopeOptions, ...tasks: Tasks<T>): Promise<T> {
  const ctl = new AbortController();
  const parent = opts.signal;
  const onParent = () => ctl.abort(new CancelledError('the caller went away', { cause: parent?.reason }));
  if (parent?.aborted) onParent();
  else parent?.addEventListener('abort', onParent, { once: true });
  const timer = opts.timeoutMs !== undefined ? setTimeout(() => ctl.abort(new DeadlineError(opts.timeoutMs!)), opts.timeoutMs) : undefined;

  let first: { error: unknown } | null = null;
  const runs = tasks.map((task) =>
    Promise.resolve()
      .then(() => task(ctl.signal))
      .catch((err: unknown) => {
        // A task failing because the scope was cancelled reports the scope's reason.
        first ??= { error: ctl.signal.aborted ? ctl.signal.reason : err };
        ctl.abort(err);
        throw err;
      }),
  );
  const settled = await Promise.allSettled(runs);
  clearTimeout(timer);
  parent?.removeEventListener('abort', onParent);
  if (first) throw (first as { error: unknown }).error;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** Sleep that ends early, rejecting with the signal's reason, when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
