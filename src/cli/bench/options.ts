/** Checks of the bench's command-line options that every scenario shares. */
import type { EngineName } from './server-process.js';

/** A numeric option's value, at least `min`; throws naming the option otherwise. */
export function numberOption(text: string, name: string, min: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number, at least ${min}`);
  return n;
}

/** The `--engines` list: bun and/or node, comma-separated. */
export function enginesOption(text: string): EngineName[] {
  const engines = text.split(',') as EngineName[];
  if (engines.some((e) => e !== 'bun' && e !== 'node')) throw new Error('--engines takes bun and/or node');
  return engines;
}
