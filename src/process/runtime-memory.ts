/**
 * Runtime memory settings sized to the box, the way a JVM is started with
 * `-XX:MaxRAMPercentage`: HEAP_PERCENT of the memory the box allows (the cgroup v2 limit
 * when there is one, else MemTotal), shared by WORKERS, is each worker's heap bound.
 *
 * - Node: `--max-old-space-size` (the V8 heap limit: a worker fails with a heap-out-of-memory
 *   report rather than the box's OOM killer picking a victim) and `--max-semi-space-size`
 *   (the young generation: fewer scavenges under request load).
 * - Bun: JavaScriptCore has no heap-limit flag. `BUN_JSC_forceRAMSize` makes its GC size
 *   the heap for that much RAM instead of the whole box (what Bun's maintainers name as the
 *   counterpart of `--max-old-space-size`); `--smol` (collect more often) is opt-in.
 *
 * bin/onebox asks `onebox runtime-flags` for the settings and starts the runtime with them;
 * the supervisor starts its workers with the same. Every figure behind a default is in
 * bench/results/memory-sizing/report.md.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { Config } from '../config.js';

/** Share of the box's memory the workers' heaps may take together, percent. */
export const HEAP_PERCENT = 75;

/** The settings this module reads. */
export type RuntimeMemoryOptions = Pick<Config, 'engine' | 'workers' | 'workerHeapMb' | 'semiSpaceMb' | 'bunSmol'>;

export interface BoxMemory {
  bytes: number;
  /** `cgroup` (memory.max of this process's cgroup v2) or `meminfo` (MemTotal). */
  source: 'cgroup' | 'meminfo';
}

export interface RuntimeMemory {
  engine: 'bun' | 'node';
  box: BoxMemory;
  workers: number;
  /** Each worker's heap bound, MiB; null leaves the runtime's own default. */
  heapMb: number | null;
  /** Node's young-generation semi-space, MiB; null for V8's default (and on Bun). */
  semiSpaceMb: number | null;
  /** Bun's `--smol`. */
  smol: boolean;
  /** Runtime options, placed before the script. */
  execArgv: string[];
  /** Environment the runtime reads at start. */
  env: Record<string, string>;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** The memory this process may use: its cgroup v2 limit when it has one, else MemTotal. */
export function boxMemory(): BoxMemory {
  const meminfo = Number(/MemTotal:\s+(\d+)/.exec(read('/proc/meminfo') ?? '')?.[1] ?? 0) * 1024 || totalmem();
  // /proc/self/cgroup is `0::/path` on cgroup v2; memory.max is `max` when unlimited.
  const path = /^0::(.*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1];
  const limit = path === undefined ? undefined : read(`/sys/fs/cgroup${path === '/' ? '' : path}/memory.max`);
  const cgroup = limit && /^\d+$/.test(limit) ? Number(limit) : Infinity;
  return cgroup < meminfo ? { bytes: cgroup, source: 'cgroup' } : { bytes: meminfo, source: 'meminfo' };
}

/** The settings for one worker of `o.workers` on a box with `box` memory. */
export function runtimeMemory(o: RuntimeMemoryOptions, box: BoxMemory = boxMemory()): RuntimeMemory {
  const auto = Math.floor((box.bytes * HEAP_PERCENT) / 100 / o.workers / 2 ** 20);
  const heapMb = o.workerHeapMb === undefined ? auto : o.workerHeapMb === 0 ? null : o.workerHeapMb;
  const semiSpaceMb = o.engine === 'node' && o.semiSpaceMb > 0 ? o.semiSpaceMb : null;
  const smol = o.engine === 'bun' && o.bunSmol;
  const execArgv: string[] = [];
  const env: Record<string, string> = {};
  if (o.engine === 'node') {
    if (heapMb !== null) execArgv.push(`--max-old-space-size=${heapMb}`);
    if (semiSpaceMb !== null) execArgv.push(`--max-semi-space-size=${semiSpaceMb}`);
  } else {
    if (heapMb !== null) env.BUN_JSC_forceRAMSize = String(heapMb * 2 ** 20);
    if (smol) execArgv.push('--smol');
  }
  return { engine: o.engine, box, workers: o.workers, heapMb, semiSpaceMb, smol, execArgv, env };
}

/** The runtime options this module manages, to replace rather than repeat in a worker's execArgv. */
const MANAGED = /^--(max-old-space-size|max_old_space_size|max-semi-space-size|max_semi_space_size|smol)\b/;

/** A worker's execArgv: the parent's own options (--inspect, …) with the managed ones set to `r`. */
export function workerExecArgv(parent: readonly string[], r: RuntimeMemory): string[] {
  return [...parent.filter((a) => !MANAGED.test(a)), ...r.execArgv];
}

/** What is in effect in this process, for /status and the cluster table. */
export interface RuntimeInEffect {
  /** Node: V8's heap limit; Bun: the RAM size JavaScriptCore sizes its heap for (null: the box's). */
  heapLimitBytes: number | null;
  semiSpaceMb: number | null;
  smol: boolean;
}

export async function runtimeInEffect(): Promise<RuntimeInEffect> {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const semi = args.map((a) => /^--max[-_]semi[-_]space[-_]size=(\d+)$/.exec(a)?.[1]).find(Boolean);
  if (process.versions.bun) {
    const forced = Number(process.env.BUN_JSC_forceRAMSize);
    return { heapLimitBytes: forced > 0 ? forced : null, semiSpaceMb: null, smol: process.execArgv.includes('--smol') };
  }
  const { getHeapStatistics } = await import('node:v8');
  return { heapLimitBytes: getHeapStatistics().heap_size_limit, semiSpaceMb: semi ? Number(semi) : null, smol: false };
}

/**
 * `onebox runtime-flags`: the runtime options on the first line and the environment
 * (NAME=value) on the second, for bin/onebox to start the runtime with. No value holds a
 * space.
 */
export function formatRuntimeFlags(r: RuntimeMemory): string {
  return `${r.execArgv.join(' ')}\n${Object.entries(r.env).map(([k, v]) => `${k}=${v}`).join(' ')}\n`;
}
