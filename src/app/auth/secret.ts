/**
 * JWT_SECRET, or in development a random secret generated once and kept in DATA_DIR with
 * 0600 permissions. The file is created exclusively (`wx`) so that several workers starting
 * at once agree on one secret.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../ops/logger.js';

/** Resolve the signing secret. */
export function resolveJwtSecret(configured: string | undefined, dataDir: string, log: Logger): string {
  if (configured) return configured;
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'jwt-secret');
  try {
    writeFileSync(file, randomBytes(48).toString('base64url'), { flag: 'wx', mode: 0o600 });
    log.warn({ file }, 'JWT_SECRET unset: generated a development secret; set JWT_SECRET in production');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readFileSync(file, 'utf8').trim();
}
