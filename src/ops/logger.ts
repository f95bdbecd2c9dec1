/**
 * Structured JSON lines on stdout (journald and Vector parse them). Secrets never reach a
 * line: known secret fields are censored by pino's redaction, and URLs pass through
 * `redactUrl` so a `?token=` query parameter is never written.
 *
 * Lines are buffered (pino's asynchronous destination) and written in chunks of 4 KiB or
 * every FLUSH_MS, whichever comes first: one write(2) per access-log line was a fifth of a
 * worker's CPU under load. pino flushes the buffer synchronously when the process exits.
 */
import { destination, pino, type Logger } from 'pino';

export type { Logger };

/** Build the process logger. @param level pino level name. */
const FLUSH_MS = 250;

export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  const dest = destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => dest.flush(), FLUSH_MS).unref();
  return pino({
    level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: [
        'authorization',
        'password',
        'token',
        'secret',
        '*.authorization',
        '*.password',
        '*.token',
        '*.secret',
        'headers.authorization',
        'headers.cookie',
      ],
      censor: '[redacted]',
    },
  }, dest);
}

const SECRET_PARAMS = /([?&](?:token|access_token|password)=)[^&#]*/gi;

/** Replace the values of secret query parameters (`token`, `access_token`, `password`). */
export function redactUrl(pathAndQuery: string): string {
  return pathAndQuery.replace(SECRET_PARAMS, '$1[redacted]');
}
