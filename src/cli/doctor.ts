/**
 * `onebox doctor`: read this box's limits (open files, somaxconn, port range, file-max,
 * memory, CPUs), say PASS/WARN/FAIL with the fix for each, and the connection capacity
 * they imply per process and per box. Exits non-zero on any FAIL.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { openFileLimits } from '../lib/open-files.js';
import { deriveCeiling } from '../realtime/ceiling.js';
import { runtimeMemory, type RuntimeMemory, type RuntimeMemoryOptions } from '../process/runtime-memory.js';

export type Verdict = 'PASS' | 'WARN' | 'FAIL';
export interface Check {
  name: string;
  value: string;
  verdict: Verdict;
  fix?: string;
}

/**
 * RSS per idle subscribed connection and the idle RSS of a worker (after a /metrics scrape),
 * measured by `onebox bench ws-memory --connections 10000` (bench/results/ws-memory-lean/),
 * plus the kernel's share per connection.
 */
const BYTES_PER_CONN = { bun: 2.2 * 1024, node: 5.8 * 1024 };
const KERNEL_BYTES_PER_CONN = 3.6 * 1024;
const PROCESS_BASE_BYTES = { bun: 66 * 2 ** 20, node: 93 * 2 ** 20 };

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

export function runChecks(engine: 'bun' | 'node'): { checks: Check[]; capacity: Record<string, number>; sysctl: string } {
  const checks: Check[] = [];
  const limits = openFileLimits();
  const soft = limits?.soft;
  const hard = limits?.hard;
  checks.push({
    name: 'open files (soft limit, this process)',
    value: String(soft ?? 'unknown'),
    verdict: soft === undefined ? 'WARN' : soft >= 65_536 ? 'PASS' : soft >= 4096 ? 'WARN' : 'FAIL',
    fix: 'LimitNOFILE=1048576 in the systemd unit (deploy/systemd/onebox.service), or ulimit -n before starting',
  });
  checks.push({
    name: 'open files (hard limit)',
    value: String(hard ?? 'unknown'),
    verdict: hard === undefined ? 'WARN' : hard >= 65_536 ? 'PASS' : 'WARN',
    fix: 'raise the hard limit (systemd LimitNOFILE, /etc/security/limits.conf); it caps the soft limit',
  });
  const fileMax = Number(read('/proc/sys/fs/file-max'));
  checks.push({
    name: 'fs.file-max',
    value: String(fileMax),
    verdict: fileMax >= 1_000_000 ? 'PASS' : fileMax >= 65_536 ? 'WARN' : 'FAIL',
    fix: 'fs.file-max = 2097152 (deploy/sysctl/99-onebox.conf)',
  });
  const somaxconn = Number(read('/proc/sys/net/core/somaxconn'));
  checks.push({
    name: 'net.core.somaxconn',
    value: String(somaxconn),
    verdict: somaxconn >= 4096 ? 'PASS' : 'WARN',
    fix: 'net.core.somaxconn = 65535, so a reconnect storm is not dropped at accept',
  });
  const syn = Number(read('/proc/sys/net/ipv4/tcp_max_syn_backlog'));
  checks.push({ name: 'net.ipv4.tcp_max_syn_backlog', value: String(syn), verdict: syn >= 4096 ? 'PASS' : 'WARN', fix: 'net.ipv4.tcp_max_syn_backlog = 65535' });
  const [lo, hi] = (read('/proc/sys/net/ipv4/ip_local_port_range') ?? '0 0').split(/\s+/).map(Number) as [number, number];
  checks.push({
    name: 'net.ipv4.ip_local_port_range',
    value: `${lo}-${hi} (${hi - lo + 1} ports)`,
    verdict: hi - lo + 1 >= 50_000 ? 'PASS' : 'WARN',
    fix: 'net.ipv4.ip_local_port_range = 1024 65000 (nginx opens one upstream port per proxied WebSocket)',
  });
  const meminfo = read('/proc/meminfo') ?? '';
  const avail = Number(/MemAvailable:\s+(\d+)/.exec(meminfo)?.[1] ?? 0) * 1024 || totalmem();
  checks.push({
    name: 'memory available',
    value: `${(avail / 2 ** 30).toFixed(1)} GiB of ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    verdict: avail >= 512 * 2 ** 20 ? 'PASS' : 'WARN',
  });
  const cores = cpus().length;
  checks.push({ name: 'CPUs', value: String(cores), verdict: 'PASS', fix: `WORKERS=${cores} uses every core (needs REDIS_URL)` });

  const perProcessFd = deriveCeiling(soft);
  const workers = cores;
  const memConns = Math.floor((avail - workers * PROCESS_BASE_BYTES[engine]) / (BYTES_PER_CONN[engine] + KERNEL_BYTES_PER_CONN));
  const capacity = {
    perProcess: perProcessFd,
    workers,
    perBoxByFiles: perProcessFd * workers,
    perBoxByMemory: Math.max(0, memConns),
    perBox: Math.max(0, Math.min(perProcessFd * workers, memConns)),
  };
  return { checks, capacity, sysctl: read(new URL('../../../deploy/sysctl/99-onebox.conf', import.meta.url).pathname) ?? read(new URL('../../deploy/sysctl/99-onebox.conf', import.meta.url).pathname) ?? '' };
}

/** The runtime memory settings bin/onebox and the supervisor apply, in words. */
function describeRuntime(r: RuntimeMemory): string {
  const box = `${(r.box.bytes / 2 ** 30).toFixed(1)} GiB (${r.box.source === 'cgroup' ? 'cgroup memory.max' : 'MemTotal'})`;
  const heap = r.heapMb === null ? "the runtime's default heap" : `${r.heapMb} MiB heap per worker`;
  const how = [...r.execArgv, ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`)].join(' ') || 'no flags';
  return `runtime memory (${r.engine}, WORKERS=${r.workers}): ${box} => ${heap}; started with ${how}`;
}

export function doctor(argv: string[], config: RuntimeMemoryOptions): number {
  const engine = config.engine;
  const { checks, capacity, sysctl } = runChecks(engine);
  const runtime = runtimeMemory(config);
  const failed = checks.some((c) => c.verdict === 'FAIL');
  if (argv.includes('--json')) {
    console.log(JSON.stringify({ engine, checks, capacity, runtime, sysctl, ok: !failed }, null, 2));
    return failed ? 1 : 0;
  }
  for (const c of checks) {
    console.log(`${c.verdict.padEnd(4)}  ${c.name}: ${c.value}${c.verdict !== 'PASS' && c.fix ? `\n      fix: ${c.fix}` : ''}`);
  }
  console.log(
    `\ncapacity (${engine}): ${capacity.perProcess} connections per process (open files minus a reserve); ` +
      `with WORKERS=${capacity.workers}: ${capacity.perBoxByFiles} by open files, ${capacity.perBoxByMemory} by memory ` +
      `=> about ${capacity.perBox} per box.`,
  );
  console.log(`\n${describeRuntime(runtime)}`);
  console.log(`\nrecommended /etc/sysctl.d/99-onebox.conf (deploy/sysctl/99-onebox.conf):\n\n${sysctl}`);
  return failed ? 1 : 0;
}
