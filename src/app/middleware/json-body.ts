/**
 * Read a JSON request body and validate it with a zod schema: 415 for another content type,
 * 400 `json_too_deep` past `maxDepth` levels of nesting, 400 `bad_json` for unparseable text,
 * 400 `validation_failed` for a NUL in any string or naming the first bad field (unknown
 * fields included, since schemas are strict). The size limit is enforced before this runs
 * (body-limit middleware), so `text()` never buffers more than the limit.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { checkJsonBounds } from '../../lib/json.js';
import { AppError } from '../../errors.js';

/** True when the request announces a body (Content-Length above 0, or chunked). */
export function hasBody(req: Request): boolean {
  const length = req.headers.get('content-length');
  return length !== null ? length !== '0' : req.headers.has('transfer-encoding');
}

export async function readJson<S extends z.ZodType>(c: Context, schema: S, maxDepth: number): Promise<z.output<S>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new AppError('unsupported_media_type', 'expected Content-Type: application/json');
  }
  const text = await c.req.text();
  const violation = checkJsonBounds(text, maxDepth, true);
  if (violation === 'too_deep') throw new AppError('json_too_deep', `JSON nested deeper than ${maxDepth} levels`);
  if (violation === 'nul') throw new AppError('validation_failed', 'strings must not contain U+0000', { field: '(body)' });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AppError('bad_json', 'request body is not valid JSON', { cause: err });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = [...issue.path];
    if (issue.code === 'unrecognized_keys') path.push(issue.keys[0]!);
    const field = path.join('.') || '(body)';
    throw new AppError('validation_failed', `${field}: ${issue.message}`, { field });
  }
  return parsed.data;
}
