/**
 * Structured JSON lines on stdout (journald and Vector parse them). Secrets never reach a
 * line: known secret fields are censored by pino's redaction, and URLs pass through
 * `redactUrl`, which censors the value of every query parameter whose *decoded* name looks
 * secret. Matching the decoded name matters: `?to%6Ben=` is `token` to URLSearchParams
 * (and so to the WebSocket upgrade), so a pattern over the raw text would let it through.
 * Errors are scrubbed the same way: a runtime's error message may quote the request URL
 * (Node's `Request` refuses one with credentials and quotes it whole).
 */
import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Build the process logger.
 * @param level pino level name.
 * @param destination where lines go. @default stdout
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: serializeErr },
    redact: {
      paths: [
        'authorization',
        'password',
        'token',
        'secret',
        'adminToken',
        '*.authorization',
        '*.password',
        '*.token',
        '*.secret',
        '*.adminToken',
        'headers.authorization',
        'headers.cookie',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Decoded parameter names whose values are never logged: tokens of every kind
 * (`token`, `access_token`, `refresh_token`, `id_token`, `admin`, `jwt`), passwords,
 * secrets, keys, signatures, session ids and credentials. Deliberately broad: censoring a
 * harmless parameter costs a log reader a value, missing a secret costs a credential.
 */
const SECRET_NAME = /token|passw|pwd|secret|admin|auth|jwt|key|sig|session|cookie|credential|code/i;

/**
 * Censor the values of secret query parameters in a path with its query string. Names are
 * decoded exactly as URLSearchParams decodes them (percent-escapes, `+`), so an encoded
 * name cannot slip past; the raw name is kept for the reader.
 * @param pathAndQuery e.g. `/v1/ws?to%6Ben=…`
 */
export function redactUrl(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf('?');
  if (q < 0) return pathAndQuery;
  const pairs = pathAndQuery.slice(q + 1).split('&');
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    const eq = pair.indexOf('=');
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    if (SECRET_NAME.test(decodeName(rawName))) pairs[i] = `${rawName}=[redacted]`;
  }
  return `${pathAndQuery.slice(0, q)}?${pairs.join('&')}`;
}

function decodeName(raw: string): string {
  if (!raw.includes('%') && !raw.includes('+')) return raw;
  // The WHATWG parser's own decoding (lenient with bad escapes), as the gateway sees it.
  for (const name of new URLSearchParams(`${raw}=`).keys()) return name;
  return raw;
}

/** URL userinfo (`//user:password@host`) and `name=value` pairs of a query inside free text. */
const USERINFO = /\/\/[^/?#@\s"']*@/g;
const QUERY_PAIR = /([?&])([^=&#\s"'?]+)=([^&#\s"']*)/g;

/** Censor URL credentials and secret query values wherever they occur in a text (error messages, stacks). */
export function redactText(text: string): string {
  if (!text.includes('@') && !text.includes('=')) return text;
  return text
    .replace(USERINFO, '//[redacted]@')
    .replace(QUERY_PAIR, (pair, sep: string, name: string) => (SECRET_NAME.test(decodeName(name)) ? `${sep}${name}=[redacted]` : pair));
}

/**
 * pino's error serializer, then `redactText` over every string in the result (message,
 * stack, a driver's extra fields, nested causes); a string passed as `err` too.
 */
function serializeErr(err: unknown): unknown {
  if (typeof err === 'string') return redactText(err);
  return scrub(stdSerializers.err(err as Error), 0);
}

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) o[k] = scrub(o[k], depth + 1);
  return o;
}
