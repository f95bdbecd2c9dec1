/**
 * `GET /v1/users/:id/dashboard`: profile and event metrics, loaded concurrently in one
 * scope bound to the request. The client going away, the deadline, or either load failing
 * aborts the other load; the response waits for both to settle, so nothing keeps running.
 */
import { Hono } from 'hono';
import { CancelledError, DeadlineError, scoped, sleep } from '../../lib/scope.js';
import { countEvents } from '../../store/events.js';
import { toPublicUser } from '../../store/users.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireUserOrAdmin } from '../middleware/auth.js';

export function dashboardRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  /** Wrap a load so that an abort it observes is counted (and any injected delay is abortable). */
  const load =
    <T>(name: 'profile' | 'metrics', fn: (signal: AbortSignal) => Promise<T>) =>
    async (signal: AbortSignal): Promise<T> => {
      try {
        if (s.config.testMode && s.config.faultStoreDelayMs) await sleep(s.config.faultStoreDelayMs, signal);
        return await fn(signal);
      } catch (err) {
        if (signal.aborted) s.dashboardAborts[name]++;
        throw err;
      }
    };

  app.get('/v1/users/:id/dashboard', requireUserOrAdmin(s), async (c) => {
    const id = c.req.param('id');
    if (!c.get('admin') && c.get('userId') !== id) throw new AppError('forbidden', 'not your dashboard');
    try {
      const [profile, metrics] = await scoped(
        { signal: c.req.raw.signal, timeoutMs: s.config.dashboardTimeoutMs },
        load('profile', async (signal) => {
          const user = await s.users.byId(id);
          signal.throwIfAborted();
          if (!user) throw new AppError('not_found', 'no such user');
          return toPublicUser(user);
        }),
        load('metrics', (signal) => countEvents(s.db, id, Date.now(), signal)),
      );
      return c.json({ profile, metrics });
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof DeadlineError) throw new AppError('deadline_exceeded', 'the dashboard took too long', { cause: err });
      if (err instanceof CancelledError) throw new AppError('client_gone', 'the client went away', { cause: err });
      throw new AppError('load_failed', 'a dashboard load failed', { cause: err });
    }
  });
  return app;
}
