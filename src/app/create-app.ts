/**
 * `createApp(config)` builds everything — database, migrations, services, HTTP routes, the
 * WebSocket gateway — without listening. Only main.ts listens, handles signals and exits.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { requestId } from 'hono/request-id';
import type { Config } from '../config.js';
import type { Logger } from '../ops/logger.js';
import { Lifecycle } from '../ops/lifecycle.js';
import { createMetrics, exposeIntegers, type Metrics } from '../ops/metrics.js';
import { Gateway } from '../realtime/gateway.js';
import { openDb, type Db } from '../store/db.js';
import { migrateToLatest } from '../store/migrations.js';
import { UserStore } from '../store/users.js';
import { resolveJwtSecret } from './auth/secret.js';
import { TokenService } from './auth/tokens.js';
import type { AppEnv, Bindings, Services } from './context.js';
import { AppError, errorBody, type ErrorCode } from './errors.js';
import { compress } from './middleware/compress.js';
import { observe } from './middleware/observe.js';
import { authRoutes } from './routes/auth.js';
import { healthRoutes } from './routes/health.js';
import { meRoutes } from './routes/me.js';
import { notifyRoutes } from './routes/notify.js';

export interface OneboxApp {
  fetch(req: Request, env: Bindings): Response | Promise<Response>;
  gateway: Gateway;
  lifecycle: Lifecycle;
  metrics: Metrics;
  db: Db;
  /** Release timers and the database. */
  close(): Promise<void>;
}

const STATUS_CODE: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

export async function createApp(config: Config, log: Logger): Promise<OneboxApp> {
  const db = await openDb(config);
  await migrateToLatest(db);
  const metrics = createMetrics();
  const lifecycle = new Lifecycle();
  const tokens = new TokenService(resolveJwtSecret(config.jwtSecret, config.dataDir, log), config.jwtTtlS);
  const s: Services = { config, log, db, users: new UserStore(db), tokens, metrics, lifecycle };
  const gateway = new Gateway(config, tokens, log);
  gateway.exposeMetrics(metrics.registry);
  exposeIntegers(metrics.registry, 'gauge', 'onebox_http_requests_in_flight', 'HTTP requests being served', () => lifecycle.inflight);

  const app = new Hono<AppEnv>();
  const json = (code: ErrorCode, status: number, message: string, field?: string, headers?: Record<string, string>) =>
    new Response(errorBody(code, message, field), {
      status,
      headers: { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers },
    });

  app.onError((err, c) => {
    if (err instanceof AppError) return json(err.code, err.status, err.message, err.field, err.headers);
    if (err instanceof HTTPException && STATUS_CODE[err.status]) {
      return json(STATUS_CODE[err.status]!, err.status, err.message || 'request refused');
    }
    log.error({ err, reqId: c.get('requestId'), route: c.req.routePath }, 'unhandled error');
    return json('internal', 500, 'internal error');
  });
  app.notFound(() => json('not_found', 404, 'no such route'));

  app.use(requestId());
  app.use(observe(s));
  app.use(async (c, next) => {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
  });
  if (config.corsOrigins.length > 0) app.use(cors({ origin: [...config.corsOrigins], maxAge: 600 }));
  app.use(compress(config.compressMinBytes));
  app.use(
    bodyLimit({
      maxSize: config.bodyLimitBytes,
      onError: () => {
        throw new AppError('payload_too_large', `body over ${config.bodyLimitBytes} bytes`);
      },
    }),
  );
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (_c, methods) =>
        json('method_not_allowed', 405, 'method not allowed', undefined, { Allow: methods.join(', ') }),
    }),
  );
  // While draining or starting, API requests get 503 so a balancer retries elsewhere;
  // probes and metrics still answer.
  app.use('/v1/*', async (_c, next) => {
    if (!lifecycle.isReady) throw new AppError('not_ready', 'server is not ready', { headers: { 'Retry-After': '1' } });
    await next();
  });

  const auth = authRoutes(s);
  app.route('/', healthRoutes(s));
  app.route('/', auth.routes);
  app.route('/', meRoutes(s));
  app.route('/', notifyRoutes(s, gateway.hub));

  return {
    fetch: (req, env) => app.fetch(req, env),
    gateway,
    lifecycle,
    metrics,
    db,
    async close() {
      gateway.stop();
      auth.close();
      metrics.close();
      await db.destroy();
    },
  };
}
