/**
 * New passwords, as NIST SP 800-63B (section 5.1.1.2) asks: at least 8 and at most 256
 * characters, counted as Unicode code points after NFKC (the form that is hashed, see
 * passwords.ts); no composition rules; refused when it is a commonly used or breached
 * password, or the account's own email address.
 *
 * The list is the common-password dictionary of `@zxcvbn-ts/language-common` (MIT; 49,233
 * passwords ranked by how often they appear in leaked-password corpora). Only its 17,950
 * entries of 8 or more characters can match a password that passed the length rule, so only
 * those are kept, in a Set built on the first check (signup, reset or change of password),
 * never at boot: it retains about 1.1 MB of heap on Node and 3 MB on Bun, and the load raises
 * RSS by about 6 MB on Node and 12 MB on Bun (allocator high-water, measured after GC).
 * Matching ignores case (`Password1` is `password1` to an attacker's rules).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { AppError } from '../../errors.js';
import { z } from 'zod';

export const MIN_PASSWORD_CHARS = 8;
export const MAX_PASSWORD_CHARS = 256;

const chars = (s: string) => [...s.normalize('NFKC')].length;

/** A new password in a request body: 8-256 code points (400 `validation_failed` otherwise). */
export const NewPassword = z
  .string()
  .max(MAX_PASSWORD_CHARS * 4)
  .refine((p) => chars(p) >= MIN_PASSWORD_CHARS, `at least ${MIN_PASSWORD_CHARS} characters`)
  .refine((p) => chars(p) <= MAX_PASSWORD_CHARS, `at most ${MAX_PASSWORD_CHARS} characters`);

/** A password presented to be checked (login, reauthentication): anything a new one may be. */
export const PresentedPassword = z.string().min(1).max(MAX_PASSWORD_CHARS * 4);

let common: Promise<Set<string>> | undefined;

/**
 * The common passwords of 8+ characters, lower case; loaded once, on first use. Read and
 * parsed as a file, not imported: an imported JSON module would stay in the module cache
 * whole (all 49,233 strings), where only the Set is needed.
 */
export function commonPasswords(): Promise<Set<string>> {
  common ??= (async () => {
    const file = createRequire(import.meta.url).resolve('@zxcvbn-ts/language-common/src/passwords.json');
    const all = JSON.parse(await readFile(file, 'utf8')) as string[];
    return new Set(all.filter((p) => chars(p) >= MIN_PASSWORD_CHARS).map((p) => p.normalize('NFKC').toLowerCase()));
  })();
  return common;
}

/** Throws 400 `password_too_common` when `password` is on the list or is the account's email. */
export async function checkNewPassword(password: string, email?: string): Promise<void> {
  const p = password.normalize('NFKC').toLowerCase();
  if ((email !== undefined && p === email.toLowerCase()) || (await commonPasswords()).has(p)) {
    throw new AppError('password_too_common', 'this password is too common (or is your email address): choose another', { field: 'password' });
  }
}
