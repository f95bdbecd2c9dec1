/**
 * What an interrupted or failed bench must stop, for scenarios with their own runner
 * (delivery.ts): each adds the stop of what it started, and removes it once stopped.
 */
export const cleanups = new Set<() => Promise<void>>();
