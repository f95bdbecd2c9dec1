/**
 * Structured JSON lines on stdout (journald and Vector parse them). Secrets never reach a
 * line: known secret fields are censored by pino's redaction, and URLs pass through
 * `redactUrl` so a `?token=` query parameter is never written.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Build the process logger. @param level pino level name. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
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
  });
}

const SECRET_PARAMS = /([?&](?:token|access_token|password)=)[^&#]*/gi;

/** Replace the values of secret query parameters (`token`, `access_token`, `password`). */
export function redactUrl(pathAndQuery: string): string {
  return pathAndQuery.replace(SECRET_PARAMS, '$1[redacted]');
}
