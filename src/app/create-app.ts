/**
 * The HTTP API as one Hono app (Web Request -> Response, the same on both engines), built
 * over the services the composition root (server.ts) made. Nothing here listens.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { requestId } from 'hono/request-id';
import type { WorkerFigures } from '../process/supervisor.js';
import type { Gateway } from '../realtime/gateway.js';
import { AppError, errorResponse } from '../errors.js';
import { openApiDocument } from './openapi.js';
import { statusRoutes } from './routes/status.js';
import { requireAdmin } from './middleware/auth.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { deviceRoutes } from './routes/devices.js';
import { eventRoutes } from './routes/events.js';
import type { AppEnv, Services } from './context.js';
import { handleError } from './error-handler.js';
import { compress } from './middleware/compress.js';
import { observe } from './middleware/observe.js';
import { hasBody } from './middleware/json-body.js';
import { authRoutes } from './routes/auth.js';
import { accountRoutes } from './routes/account.js';
import { emailRoutes } from './routes/email.js';
import { passwordRoutes } from './routes/password.js';
import { healthRoutes } from './routes/health.js';
import { memberRoutes } from './routes/members.js';
import { meRoutes } from './routes/me.js';
import { notifyRoutes } from './routes/notify.js';
import { receiptRoutes } from './routes/receipts.js';
import { socialRoutes } from './routes/social.js';
import { sessionRoutes } from './routes/sessions.js';

/**
 * The HTTP API over `s`.
 * @param gateway for the status page's connection figures.
 * @param cluster the supervisor's table of every worker (empty with WORKERS=1).
 */
export function createHttpApp(s: Services, gateway: Gateway, cluster: () => WorkerFigures[]): Hono<AppEnv> {
  const { config, log, lifecycle, knownUsers } = s;
  const app = new Hono<AppEnv>();
  app.onError(handleError(log, { userGone: knownUsers }));
  app.notFound(() => errorResponse('not_found', 'no such route'));

  app.use(requestId());
  app.use(observe(s));
  app.use(async (c, next) => {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    // Answered before the body was read (401, 413, 415…): the unread bytes would be taken
    // for the next request, so this connection must not be reused.
    if (!c.req.raw.bodyUsed && hasBody(c.req.raw)) c.header('Connection', 'close');
  });
  if (config.corsOrigins.length > 0) app.use(cors({ origin: [...config.corsOrigins], maxAge: 600 }));
  app.use(compress(config.compressMinBytes));
  app.use(
    bodyLimit({
      maxSize: config.bodyLimitBytes,
      onError: () => {
        // The rest of the body is never read: the connection must close after this answer.
        throw new AppError('payload_too_large', `body over ${config.bodyLimitBytes} bytes`, { headers: { Connection: 'close' } });
      },
    }),
  );
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (_c, methods) =>
        errorResponse('method_not_allowed', 'method not allowed', undefined, { Allow: methods.join(', ') }),
    }),
  );
  // No id, email or topic holds U+0000, and PostgreSQL refuses it in any text parameter
  // (SQLite just finds nothing): a path that decodes to one names nothing, on either store.
  app.use(async (c, next) => {
    if (c.req.path.includes('\u0000')) throw new AppError('not_found', 'no such route or resource');
    await next();
  });
  // While draining or starting, API requests get 503 so a balancer retries elsewhere;
  // probes and metrics still answer.
  app.use('/v1/*', async (_c, next) => {
    if (!lifecycle.isReady) throw new AppError('not_ready', 'server is not ready', { headers: { 'Retry-After': '1' } });
    await next();
  });

  app.route('/', healthRoutes(s));
  app.route('/', authRoutes(s));
  app.route('/', socialRoutes(s));
  app.route('/', sessionRoutes(s));
  app.route('/', meRoutes(s));
  app.route('/', emailRoutes(s));
  app.route('/', passwordRoutes(s));
  app.route('/', accountRoutes(s));
  app.route('/', notifyRoutes(s));
  app.route('/', receiptRoutes(s));
  app.route('/', memberRoutes(s));
  app.route('/', dashboardRoutes(s));
  app.route('/', eventRoutes(s));
  app.route('/', deviceRoutes(s));
  app.route('/', statusRoutes(s, { gateway, live: s.live, cluster }));
  if (config.testMode && config.faultBlockRoute) {
    // Fault injection for tests of the watchdog and the block detector.
    app.post('/debug/block', requireAdmin(s), async (c) => {
      const ms = Math.min(60_000, Number((await c.req.json<{ ms?: number }>()).ms) || 0);
      const until = performance.now() + ms;
      while (performance.now() < until) {
        /* hold the loop */
      }
      return c.json({ blockedMs: ms });
    });
  }
  const openapi = JSON.stringify(openApiDocument());
  app.get('/openapi.json', (c) => c.body(openapi, 200, { 'Content-Type': 'application/json' }));

  return app;
}
