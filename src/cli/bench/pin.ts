/**
 * `--pin`: the server processes on some cores, every harness process on the others, so that
 * a latency figure measures the server rather than the clients and the load generator that
 * share its cores. The bench sets its own affinity (every thread) to the harness cores before
 * it starts anything, so the client processes and Redis it forks inherit them; the server is
 * started through `taskset -c <server cores>`, which execs, so its pid and its workers keep
 * those. What ran where is read back from /proc (Cpus_allowed_list), not assumed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface Pinning {
  /** CPU list for the server processes, taskset's form (`0`, `0-3`, `0,2`). */
  server: string;
  /** CPU list for the bench, its client processes, the load generator and Redis. */
  harness: string;
}

/** The cores this process may run on (its affinity, which may be narrower than the box). */
function allowedCores(): number[] {
  return expand(/^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? `0-${cpus().length - 1}`);
}

/** `0-2,5` -> [0, 1, 2, 5] */
export function expand(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (!Number.isInteger(a) || (b !== undefined && !Number.isInteger(b))) throw new Error(`not a CPU list: ${list}`);
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

/**
 * `--pin` values: `off`; `auto` (the first half of the allowed cores, rounded up, to the
 * server, the rest to the harness; off with fewer than 2); `S/H` (two CPU lists, e.g. `0/1`
 * or `0-3/4-7`). Unset: `auto` where the box has at least 4 cores, else off, because on 2
 * cores the server gets one and the default run would measure a smaller server.
 */
export function parsePin(value: string | undefined): Pinning | null {
  const cores = allowedCores();
  const v = value ?? (cores.length >= 4 ? 'auto' : 'off');
  if (v === 'off') return null;
  if (v === 'auto') {
    if (cores.length < 2) return null;
    const half = Math.ceil(cores.length / 2);
    return { server: cores.slice(0, half).join(','), harness: cores.slice(half).join(',') };
  }
  const m = /^([\d,-]+)\/([\d,-]+)$/.exec(v);
  if (!m) throw new Error('--pin takes off, auto or SERVER/HARNESS CPU lists such as 0/1 or 0-3/4-7');
  const server = expand(m[1]!);
  const harness = expand(m[2]!);
  if (server.some((c) => harness.includes(c))) throw new Error('--pin: the server and harness CPU lists overlap');
  const missing = [...server, ...harness].filter((c) => !cores.includes(c));
  if (missing.length > 0) throw new Error(`--pin: CPU ${missing.join(',')} is not available to this process (allowed: ${cores.join(',')})`);
  return { server: m[1]!, harness: m[2]! };
}

/** Pin every thread of this process (and so whatever it forks from now on) to `list`. */
export function pinSelf(list: string): void {
  execFileSync('taskset', ['-a', '-cp', list, String(process.pid)], { stdio: 'ignore' });
}

/** A command line run on `list` through taskset (which execs: the pid is the command's). */
export function pinnedCommand(list: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return list === undefined ? [cmd, args] : ['taskset', ['-c', list, cmd, ...args]];
}

/** Each pid's allowed CPU list, as the kernel has it now; pids that are gone are left out. */
export function affinityOf(pids: number[]): Record<string, number[]> {
  const by: Record<string, number[]> = {};
  for (const pid of pids) {
    try {
      const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      if (list) (by[list] ??= []).push(pid);
    } catch {
      /* gone */
    }
  }
  return by;
}
