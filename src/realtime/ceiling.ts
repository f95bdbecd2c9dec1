/**
 * The connection ceiling of one process. Unless MAX_CONNECTIONS is set, it is the soft
 * open-file limit minus a reserve for the database, logs, HTTP clients and upstream
 * sockets, so that an upgrade is refused with a 503 long before accept() meets EMFILE.
 * Node has no getrlimit; /proc/self/limits is read on Linux (both engines).
 */
import { readFileSync } from 'node:fs';

/** The soft "Max open files" limit, or undefined where /proc is unavailable. */
export function openFileLimit(): number | undefined {
  try {
    const text = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (!m) return undefined;
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Reserve: 10% of the limit, at least 128 descriptors. */
export function deriveCeiling(limit: number | undefined): number {
  if (limit === undefined) return 1000;
  return Math.max(1, limit - Math.max(128, Math.ceil(limit * 0.1)));
}
