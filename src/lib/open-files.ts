/**
 * This process's open-file limits. Node has no getrlimit; /proc/self/limits is read on Linux
 * (both engines). The gateway derives its connection ceiling from the soft limit; `onebox
 * doctor` reports both.
 */
import { readFileSync } from 'node:fs';

/** Soft and hard "Max open files" (unlimited as MAX_SAFE_INTEGER), or undefined without /proc. */
export function openFileLimits(): { soft: number; hard: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return undefined;
  const value = (v: string) => (v === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(v));
  return { soft: value(m[1]!), hard: value(m[2]!) };
}
