/**
 * JWT_SECRET, or in development a random secret generated once and kept in DATA_DIR with
 * 0600 permissions. The file is created exclusively (`wx`) so that several workers starting
 * at once agree on one secret.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../config.js';
import type { Logger } from '../../observability/logger.js';

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
  const secret = readFileSync(file, 'utf8').trim();
  // An empty or truncated file (a full disk at first start, a hand edit) would sign tokens
  // with a weak key, or fail on the first login: refuse to start instead.
  if (secret.length < 32) {
    throw new ConfigError(`${file} holds ${secret.length ? 'a secret under 32 characters' : 'no secret'}: remove it to generate a new one, or set JWT_SECRET`);
  }
  return secret;
}
