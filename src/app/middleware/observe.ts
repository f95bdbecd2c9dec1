/**
 * Per-request bookkeeping: in-flight count (for drain), the metrics, and one debug log line
 * with request id, route, status and duration. At info nothing is logged per request
 * except server errors (logged by the error handler) and slow requests.
 */
import type { MiddlewareHandler } from 'hono';
import { redactUrl } from '../../observability/logger.js';
import type { AppEnv, Services } from '../context.js';

const SLOW_MS = 1000;

/**
 * Methods kept as a metric label; any other the HTTP parser accepts (PROPFIND, MKCALENDAR,
 * SEARCH, … about 30 on Node and Bun) is `other`, so a client cannot multiply the series.
 */
const METHOD_LABELS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The path and query of an absolute request URL, without building a URL object: parsing
 * can throw, and a parse error's message quotes the whole URL, query secrets included.
 */
function pathAndQuery(url: string): string {
  const scheme = url.indexOf('://');
  const start = scheme < 0 ? 0 : url.indexOf('/', scheme + 3);
  if (start < 0) return '/';
  const hash = url.indexOf('#', start);
  return hash < 0 ? url.slice(start) : url.slice(start, hash);
}

export function observe(s: Services): MiddlewareHandler<AppEnv> {
  const debug = s.log.isLevelEnabled('debug');
  return async (c, next) => {
    const start = performance.now();
    s.loopMonitor.enter(c.req.method, c.req.path);
    s.lifecycle.enter();
    try {
      await next();
    } finally {
      s.lifecycle.leave();
      const ms = performance.now() - start;
      s.live.record(ms);
      const route = c.req.routePath || 'unmatched';
      const method = c.req.method;
      const status = c.res.status;
      const label = METHOD_LABELS.has(method) ? method : 'other';
      s.metrics.http.record(route, label, status, ms / 1000);
      if (debug || ms > SLOW_MS) {
        s.log[ms > SLOW_MS ? 'warn' : 'debug'](
          {
            reqId: c.get('requestId'),
            method,
            route,
            path: redactUrl(pathAndQuery(c.req.url)),
            status,
            ms: Math.round(ms * 100) / 100,
          },
          'request',
        );
      }
    }
  };
}
