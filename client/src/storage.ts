/**
 * Positions (`{offset, epoch}` per topic) are stored as JSON under `<prefix>:pos:<topic>`
 * through a StorageAdapter: `localStorage` and React Native's `AsyncStorage` fit as they are.
 */
import type { StorageAdapter } from './types.js';

/** A position in a topic's log: the last offset the app processed, in the store's epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** The default adapter: positions live as long as the page or the app process. */
export function memoryStorage(): StorageAdapter {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

export async function loadPosition(storage: StorageAdapter, key: string): Promise<Position | undefined> {
  const text = await storage.getItem(key);
  if (!text) return undefined;
  try {
    const p = JSON.parse(text) as Partial<Position>;
    if (typeof p.offset === 'number' && Number.isSafeInteger(p.offset) && p.offset >= 0 && typeof p.epoch === 'string') {
      return { offset: p.offset, epoch: p.epoch };
    }
  } catch {
    /* a corrupt entry is no position */
  }
  return undefined;
}
