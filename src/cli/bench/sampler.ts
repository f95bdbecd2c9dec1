/** Samples every server process from /proc, and the kernel's socket memory. */
import { readdirSync, readFileSync } from 'node:fs';

const TICK = 100; // USER_HZ on Linux

export interface ProcSample {
  pid: number;
  rssBytes: number;
  cpuSeconds: number;
  /** Time the main thread spent runnable but waiting for a core (/proc/<pid>/schedstat). */
  runQueueSeconds: number;
}

/** The pid and all its descendants (a WORKERS>1 supervisor and its workers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      let list = children.get(ppid);
      if (!list) children.set(ppid, (list = []));
      list.push(Number(name));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

export function sampleProc(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const sched = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ');
    return {
      pid,
      rssBytes: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024,
      cpuSeconds: (Number(f[11]) + Number(f[12])) / TICK,
      runQueueSeconds: Number(sched[1] ?? 0) / 1e9,
    };
  } catch {
    return null;
  }
}

/** TCP socket memory in bytes (/proc/net/sockstat counts pages) and sockets in use. */
export function sockstat(): { tcpInUse: number; tcpMemBytes: number } {
  const text = readFileSync('/proc/net/sockstat', 'utf8');
  const m = /TCP: inuse (\d+) .*mem (\d+)/.exec(text);
  return { tcpInUse: Number(m?.[1] ?? 0), tcpMemBytes: Number(m?.[2] ?? 0) * 4096 };
}

/**
 * Proportional set size: pages shared by several processes (the runtime's binary, mapped by
 * every worker) count a share each, so the sum over processes is what they use together.
 */
export function pssOf(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Busy and total CPU seconds of the whole box (all cores), from /proc/stat. */
export function boxCpu(): { busySeconds: number; totalSeconds: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busySeconds: (total - idle) / TICK, totalSeconds: total / TICK };
}

/** The box's load averages over 1, 5 and 15 minutes, as /proc/loadavg gives them: the box is shared. */
export const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/**
 * RSS, CPU and run-queue seconds summed over a server's process tree (its supervisor and
 * workers); PSS too when asked (it reads smaps, slower). Zeros for a target without a pid.
 */
export function treeFigures(root: number | undefined, withPss = false): { rss: number; pss: number; cpu: number; wait: number } {
  const f = { rss: 0, pss: 0, cpu: 0, wait: 0 };
  for (const pid of root === undefined ? [] : processTree(root)) {
    const s = sampleProc(pid);
    if (!s) continue;
    f.rss += s.rssBytes;
    f.cpu += s.cpuSeconds;
    f.wait += s.runQueueSeconds;
    if (withPss) f.pss += pssOf(pid);
  }
  return f;
}
